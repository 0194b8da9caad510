"""LeNet on MNIST: the graphc demo.

Trains the 32/64/128-channel LeNet with Adam on the bundled MNIST files and reports the
test accuracy after each epoch. Flags: --epochs, --batch-size, --limit (train on the first
N images, for quick runs), --hybridize (run the traced graph instead of op by op).
"""
import argparse
import json
import time

import graphc as gc
from graphc import autograd, gluon
from graphc.gluon import nn
from graphc.gluon.data.vision import MNIST, ToTensor
from graphc.progress import Progress


def lenet():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(32, kernel_size=5, activation='relu'), nn.MaxPool2D(2, 2),
                nn.Conv2D(64, 5, activation='relu'), nn.MaxPool2D(2, 2),
                nn.Conv2D(128, 4, activation='relu'), nn.Flatten(),
                nn.Dense(84, activation='relu'), nn.Dense(10))
    return net


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training images' pixels in [0, 1]


def mnist_sets(standardize=False):
    """The bundled MNIST train and test sets, images as float32 CHW in [0, 1] (batched in one step), or
    standardized with the training set's mean and std (as PyTorch's MNIST example does)."""
    if standardize:
        to_tensor = lambda x, y: ((ToTensor()(x) - MNIST_MEAN) / MNIST_STD, y)  # noqa: E731
    else:
        to_tensor = lambda x, y: (ToTensor()(x), y)  # noqa: E731  uint8 HWC -> float32 CHW in [0, 1]
    to_tensor.batchable = True
    return MNIST(train=True, transform=to_tensor), MNIST(train=False, transform=to_tensor)


def train_epoch(net, trainer, loss_fn, batches, bar=None):
    """One pass over `batches` (any iterable of (x, y)); `bar`, a Progress over the samples, shows loss and
    accuracy as it goes (the last batch may be short: it counts the samples, not batches times their size).
    Returns (mean loss, accuracy, samples, seconds)."""
    t0 = time.perf_counter()
    seen = correct = 0
    loss_sum = 0.0
    for x, y in batches:
        with autograd.record():
            out = net(x)
            loss = loss_fn(out, y)
        loss.backward()
        trainer.step(x.shape[0])
        seen += x.shape[0]
        loss_sum += float(loss.sum().asscalar())
        correct += int((out.asnumpy().argmax(1) == y.asnumpy()).sum())
        if bar is not None:
            bar.set_postfix(loss=round(loss_sum / seen, 4), acc=round(correct / seen, 4))
            bar.update(x.shape[0])
    if bar is not None:
        bar.close()
    return loss_sum / seen, correct / seen, seen, time.perf_counter() - t0


def evaluate(net, loader):
    correct = total = 0
    for x, y in loader:
        pred = net(x).asnumpy().argmax(axis=1)
        correct += int((pred == y.asnumpy()).sum())
        total += len(pred)
    return correct / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--limit', type=int, default=0, help='train on the first N images only (0: all 60000)')
    p.add_argument('--hybridize', action='store_true', help='trace the network and run the graph')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--json', help='write the results to this JSON file')
    args = p.parse_args(argv)

    gc.random.seed(args.seed)
    train_set, test_set = mnist_sets()
    n_train = min(args.limit or len(train_set), len(train_set))  # shuffles the first n_train images
    sampler = gluon.data.BatchSampler(gluon.data.RandomSampler(n_train), args.batch_size, 'keep')
    train_loader = gluon.data.DataLoader(train_set, batch_sampler=sampler)
    test_loader = gluon.data.DataLoader(test_set, batch_size=1000)

    net = lenet()
    net.initialize(gc.init.Xavier(), ctx=gc.cpu())
    if args.hybridize:
        net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': args.lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    results = []
    for epoch in range(1, args.epochs + 1):
        bar = Progress(total=n_train, desc=f"epoch {epoch}/{args.epochs}", unit='samples')
        train_loss, train_acc, seen, train_time = train_epoch(net, trainer, loss_fn, train_loader, bar)
        acc = evaluate(net, test_loader)
        results.append({'epoch': epoch, 'train_loss': train_loss, 'train_acc': train_acc,
                        'test_acc': acc, 'train_seconds': train_time, 'samples_per_second': seen / train_time})
        print(f"epoch {epoch}: train loss {train_loss:.4f}, train acc {train_acc:.4f}, "
              f"test acc {acc:.4f}, {train_time:.1f} s ({seen / train_time:.0f} samples/s)", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'epochs': results}, f, indent=2)
    return results


if __name__ == '__main__':
    main()
