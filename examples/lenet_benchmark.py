"""The LeNet comparison protocol (as used for MATLAB, PyTorch and Flux), run eager and hybridized.

Model: the 32/64/128-channel LeNet of examples/lenet_mnist.py. Batch 600, Adam with learning rate
1e-3 multiplied by 0.1 every 30 epochs (a FactorScheduler counted in iterations), no weight decay,
the test set evaluated after every epoch. Inputs are standardized with the training set's pixel mean
and std (0.1307, 0.3081), as PyTorch's MNIST example does; --raw-inputs keeps pixels in [0, 1] (3 epochs:
98.32% that way, measured before a change in the convolutions' summation order; 98.61% standardized, after). Glorot-uniform weights, zero biases. Both modes start from the
same seed, so they train the same numbers; the time of each epoch's training (not evaluation) is recorded.

Writes --json (default lenet_benchmark.json) with per-epoch train/test loss and accuracy and epoch
seconds for each mode, and, when matplotlib is importable, accuracy.png, loss.png and
epoch_time.png next to it. Flags: --epochs (default 100), --limit N (train on the first N images),
--test-limit N, --modes eager,hybrid.
"""
import argparse
import json
import os
import sys

import graphc as gc
from graphc import gluon, lr_scheduler
from graphc.progress import Progress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lenet_mnist import lenet, mnist_sets, train_epoch  # noqa: E402


def evaluate(net, loss_fn, loader):
    correct = total = 0
    loss_sum = 0.0
    for x, y in loader:
        out = net(x)
        loss_sum += float(loss_fn(out, y).sum().asscalar())
        correct += int((out.asnumpy().argmax(axis=1) == y.asnumpy()).sum())
        total += x.shape[0]
    return loss_sum / total, correct / total


def run(mode, args, train_set, test_set, n_train, n_test):
    gc.random.seed(args.seed)
    sampler = gluon.data.BatchSampler(gluon.data.RandomSampler(n_train), args.batch_size, 'keep')
    train_loader = gluon.data.DataLoader(train_set, batch_sampler=sampler)
    test_loader = gluon.data.DataLoader(test_set, sampler=gluon.data.SequentialSampler(n_test), batch_size=1000)
    iters_per_epoch = len(sampler)
    net = lenet()
    net.initialize(gc.init.Xavier(), ctx=gc.cpu())
    if mode == 'hybrid':
        net.hybridize()
    sched = lr_scheduler.FactorScheduler(step=args.lr_step_epochs * iters_per_epoch, factor=0.1, base_lr=args.lr)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'lr_scheduler': sched, 'wd': 0.0})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    epochs = []
    for epoch in range(1, args.epochs + 1):
        lr = sched(trainer.optimizer.num_update + 1)  # the rate of this epoch's first update
        bar = Progress(total=n_train, desc=f"[{mode}] epoch {epoch}/{args.epochs}", unit='samples')
        train_loss, train_acc, seen, secs = train_epoch(net, trainer, loss_fn, train_loader, bar)
        test_loss, test_acc = evaluate(net, loss_fn, test_loader)
        rec = {'epoch': epoch, 'lr': lr, 'train_loss': train_loss, 'train_acc': train_acc,
               'test_loss': test_loss, 'test_acc': test_acc, 'epoch_seconds': secs,
               'samples_per_second': seen / secs}
        epochs.append(rec)
        print(f"[{mode}] epoch {epoch}/{args.epochs}: lr {lr:.2g}, train loss {rec['train_loss']:.4f}, "
              f"train acc {rec['train_acc']:.4f}, test loss {test_loss:.4f}, test acc {test_acc:.4f}, "
              f"{secs:.2f} s ({rec['samples_per_second']:.0f} samples/s)", flush=True)
    return epochs


def plot(results, out_dir):
    """accuracy.png, loss.png, epoch_time.png in out_dir; the list of files, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    files = []
    panels = [('accuracy.png', 'accuracy', [('train_acc', 'train'), ('test_acc', 'test')]),
              ('loss.png', 'loss', [('train_loss', 'train'), ('test_loss', 'test')]),
              ('epoch_time.png', 'epoch time (s)', [('epoch_seconds', 'train')])]
    for fname, ylabel, keys in panels:
        fig, ax = plt.subplots(figsize=(6, 4))
        for k, (mode, epochs) in enumerate(results.items()):
            for key, label in keys:   # dashed with markers for the second mode: equal curves stay visible
                ax.plot([e['epoch'] for e in epochs], [e[key] for e in epochs], label=f"{mode} {label}",
                        linestyle='--' if k else '-', marker='o' if k else None)
        ax.set_xlabel('epoch')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
        ax.set_ylabel(ylabel)
        ax.set_title(f"LeNet on MNIST: {ylabel}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        path = os.path.join(out_dir, fname)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=600)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--lr-step-epochs', type=int, default=30, help='multiply the learning rate by 0.1 this often')
    p.add_argument('--limit', type=int, default=0, help='train on the first N images only (0: all 60000)')
    p.add_argument('--test-limit', type=int, default=0, help='evaluate on the first N test images (0: all 10000)')
    p.add_argument('--modes', default='eager,hybrid', help='comma-separated: eager, hybrid')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--raw-inputs', action='store_true',
                   help='pixels in [0, 1] as they are (default: standardized with the training set mean and std)')
    p.add_argument('--json', default='lenet_benchmark.json', help='the result file; plots go next to it')
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(',') if m.strip()]
    if not modes or any(m not in ('eager', 'hybrid') for m in modes):
        p.error(f"--modes must list eager and/or hybrid, got {args.modes!r}")

    train_set, test_set = mnist_sets(standardize=not args.raw_inputs)
    n_train = min(args.limit or len(train_set), len(train_set))
    n_test = min(args.test_limit or len(test_set), len(test_set))

    results = {mode: run(mode, args, train_set, test_set, n_train, n_test) for mode in modes}
    summary = {}
    for mode, epochs in results.items():
        times = [e['epoch_seconds'] for e in epochs]
        summary[mode] = {'final_test_acc': epochs[-1]['test_acc'], 'best_test_acc': max(e['test_acc'] for e in epochs),
                         'total_train_seconds': sum(times), 'mean_epoch_seconds': sum(times) / len(times),
                         'median_epoch_seconds': sorted(times)[len(times) // 2]}
        print(f"[{mode}] final test acc {summary[mode]['final_test_acc']:.4f}, "
              f"mean epoch {summary[mode]['mean_epoch_seconds']:.2f} s", flush=True)
    if len(results) == 2:
        summary['hybrid_speedup'] = summary['eager']['mean_epoch_seconds'] / summary['hybrid']['mean_epoch_seconds']
    out_dir = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out_dir, exist_ok=True)
    protocol = {'model': 'LeNet 32/64/128 (examples/lenet_mnist.py)', 'batch_size': args.batch_size,
                'optimizer': 'adam', 'lr': args.lr, 'lr_schedule': f"x0.1 every {args.lr_step_epochs} epochs",
                'weight_decay': 0.0, 'train_images': n_train, 'test_images': n_test,
                'inputs': 'pixels in [0, 1]' if args.raw_inputs else 'standardized: (x - 0.1307) / 0.3081'}
    with open(args.json, 'w') as f:
        json.dump({'args': vars(args), 'protocol': protocol, 'summary': summary, 'results': results}, f, indent=2)
    plots = plot(results, out_dir)
    if plots is None:
        print("plots skipped: matplotlib is not installed (pip install matplotlib, then run again)", flush=True)
    else:
        print(f"wrote {args.json} and {', '.join(plots)}", flush=True)
    return {'summary': summary, 'results': results, 'plots': plots}


if __name__ == '__main__':
    main()
