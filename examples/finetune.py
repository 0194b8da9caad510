"""Fine-tuning a model-zoo network, as the Gluon courses teach it.

1. An image folder made from the bundled MNIST digits: <work>/{train,test}/<digit>/<n>.png (Pillow), read
   back with gluon.data.vision.ImageFolderDataset and transforms (Resize, ToTensor, Normalize).
2. A pretrained zoo model (--model: mobilenet0.25 by default, the cheapest to train on two cores; resnet18_v1
   or any zoo model whose classifier is `output = Dense`). graphc downloads nothing: with --pretrained-root,
   MXNet's published file in that folder is used (mobilenet0.25-9f83e440.params, resnet18_v1-a0666292.params);
   without it, the example makes its own "pretrained" model: the model trained briefly on the digits 0-4
   only, saved with save_parameters under MXNet's model-store name (<work>/models/<model>-<first 8 hex digits
   of its SHA-1>.params).
3. get_model(model, pretrained=True, root=...) loads it; `net.output = nn.Dense(10)` replaces the
   classifier and only it is initialised; `net.collect_params('.*dense')` gives the new layer lr_mult 5 (the
   body learns at the base rate); then it trains on all ten digits, printing progress and the test accuracy.
4. reset_ctx moves the loaded model to another device and back (a GPU where there is one, else cpu(1)),
   with the same outputs.

Full run (the defaults): `python examples/finetune.py` (time and accuracy: README's "Model zoo" section).
"""
import argparse
import hashlib
import os
import tempfile
import time

import numpy as np

import graphc as gc
from graphc import gluon
from graphc.gluon import nn
from graphc.gluon.data.vision import MNIST, ImageFolderDataset, transforms
from graphc.gluon.model_zoo import vision
from graphc.progress import Progress
from lenet_mnist import MNIST_MEAN, MNIST_STD, evaluate, train_epoch


def write_image_folder(root, train, n, digits=range(10)):
    """The first n MNIST images (of the given digits) as root/<digit>/<index>.png; returns root."""
    from PIL import Image
    data = MNIST(train=train)
    images, labels = data._data.asnumpy(), data._label   # uint8 (N, 28, 28, 1), int32 (N,)
    keep = np.flatnonzero(np.isin(labels, list(digits)))[:n]
    for d in digits:
        os.makedirs(os.path.join(root, str(d)), exist_ok=True)
    for i in keep:
        Image.fromarray(images[i][:, :, 0]).save(os.path.join(root, str(labels[i]), f'{i:05d}.png'))
    return root


def loader(root, size, batch_size, shuffle):
    """ImageFolderDataset (PNGs decoded as RGB) -> resized, scaled to [0, 1] CHW, standardized."""
    prep = transforms.Compose([transforms.Resize(size), transforms.ToTensor(),
                               transforms.Normalize((MNIST_MEAN,) * 3, (MNIST_STD,) * 3)])
    data = ImageFolderDataset(root, flag=1).transform_first(prep)
    return gluon.data.DataLoader(data, batch_size=batch_size, shuffle=shuffle, last_batch='keep'), data


def train(net, trainer, data, epochs, desc):
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        bar = Progress(total=len(data[1]), desc=f'{desc} {epoch}/{epochs}', unit='images')
        loss, acc, seen, secs = train_epoch(net, trainer, loss_fn, data[0], bar)
        print(f'{desc} epoch {epoch}: loss {loss:.4f}, train acc {acc:.4f}, {secs:.1f} s ({seen / secs:.0f} images/s)',
              flush=True)


def make_pretrained(work, args):
    """The model trained on the digits 0-4, saved as MXNet's model store names a file; returns its folder."""
    src = loader(write_image_folder(os.path.join(work, 'source'), True, args.pretrain_images, range(5)),
                 args.size, args.batch_size, True)
    net = vision.get_model(args.model, classes=5)
    net.initialize(gc.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': args.pretrain_lr, 'momentum': 0.9,
                                                          'wd': 1e-4})
    train(net, trainer, src, 1, 'pretrain (digits 0-4)')
    root = os.path.join(work, 'models')
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, args.model + '.tmp')
    net.save_parameters(tmp)
    sha = hashlib.sha1(open(tmp, 'rb').read()).hexdigest()
    os.replace(tmp, os.path.join(root, f'{args.model}-{sha[:8]}.params'))
    return root


def moved_and_back(net, x):
    """reset_ctx to another device and back; the outputs there and here agree."""
    here = net(x).asnumpy()
    other = gc.gpu(0) if gc.num_gpus() else gc.cpu(1)
    net.reset_ctx(other)
    there = net(x.as_in_context(other)).asnumpy()
    net.reset_ctx(gc.cpu())
    back = net(x).asnumpy()
    diff = max(float(np.abs(there - here).max()), float(np.abs(back - here).max()))
    print(f'reset_ctx: {gc.cpu()} -> {other} -> {gc.cpu()}: max |difference| of the outputs {diff:.2e}')
    return other, diff


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='mobilenet0.25', help="a zoo name: mobilenet0.25, resnet18_v1, ...")
    p.add_argument('--train-images', type=int, default=6000, help='fine-tuning images (all ten digits)')
    p.add_argument('--test-images', type=int, default=1000)
    p.add_argument('--pretrain-images', type=int, default=6000, help='images of digits 0-4 to pretrain on')
    p.add_argument('--pretrained-root', help="a folder with MXNet's published file of --model (skips pretraining)")
    p.add_argument('--size', type=int, default=32, help='input size the digits are resized to')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--lr', type=float, default=0.02, help='the base learning rate (the new output layer: x lr-mult)')
    p.add_argument('--lr-mult', type=float, default=5.0, help="the new output layer's lr_mult")
    p.add_argument('--pretrain-lr', type=float, default=0.1)
    p.add_argument('--work', help='where the image folders and the model file go (default: a temporary folder)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    gc.random.seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        root = args.pretrained_root or make_pretrained(work, args)
        classes = 1000 if args.pretrained_root else 5                      # the classes it was trained on
        net = vision.get_model(args.model, classes=classes, pretrained=True, root=root)
        net.output = nn.Dense(10)                                          # the new classifier ...
        net.output.initialize(gc.init.Xavier())                            # ... is the only layer initialised
        net.collect_params('.*dense').setattr('lr_mult', args.lr_mult)     # and learns faster than the body
        net.hybridize()
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': args.lr, 'momentum': 0.9, 'wd': 1e-4})
        train_data = loader(write_image_folder(os.path.join(work, 'train'), True, args.train_images),
                            args.size, args.batch_size, True)
        test_data = loader(write_image_folder(os.path.join(work, 'test'), False, args.test_images),
                           args.size, 256, False)
        train(net, trainer, train_data, args.epochs, 'fine-tune (digits 0-9)')
        acc = evaluate(net, test_data[0])
        print(f'test accuracy {acc:.4f} on {len(test_data[1])} images', flush=True)
        device, diff = moved_and_back(net, next(iter(test_data[0]))[0])
    secs, cpu = time.perf_counter() - t0, time.process_time()
    print(f'total {secs:.1f} s ({cpu:.1f} s of CPU time in this process)')
    return {'test_acc': acc, 'seconds': secs, 'reset_ctx_device': str(device), 'reset_ctx_diff': diff,
            'lr_mult': {k: p.lr_mult for k, p in net.collect_params().items() if p.lr_mult != 1}}


if __name__ == '__main__':
    main()
