"""Mocha.jl's MNIST tutorial (LeNet, Caffe's solver settings) in graphc, trained with solver.fit.

Network: conv 20 5x5, max-pool 2, conv 50 5x5, max-pool 2, dense 500 relu, dense 10 (the conv
layers have no activation, as in Mocha's and Caffe's LeNet). SGD with momentum 0.9 and weight
decay 0.0005, learning rate by the Inv policy (base 0.01, gamma 0.0001, power 0.75), batch 64,
validation on the test set every 1000 iterations, snapshots every 5000 into --snapshot-dir
(training resumes from the newest one there). Prints the final test accuracy.
"""
import argparse
import json
import os
import sys

import graphc as gc
from graphc import gluon
from graphc.gluon import nn, solver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lenet_mnist import mnist_sets  # noqa: E402


def mocha_lenet():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(20, kernel_size=5), nn.MaxPool2D(2, 2),
                nn.Conv2D(50, kernel_size=5), nn.MaxPool2D(2, 2),
                nn.Flatten(), nn.Dense(500, activation='relu'), nn.Dense(10))
    return net


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--max-iter', type=int, default=10000)
    p.add_argument('--hybridize', action='store_true', help='trace the network and run the graph')
    p.add_argument('--snapshot-dir', help='snapshot (and resume) here; no snapshots without it')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--val-every', type=int, default=1000)
    p.add_argument('--snapshot-every', type=int, default=5000)
    p.add_argument('--summary-every', type=int, default=100)
    p.add_argument('--limit', type=int, default=0, help='train on the first N images only (0: all 60000)')
    p.add_argument('--test-limit', type=int, default=0, help='validate on the first N test images (0: all 10000)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--json', help='write the history and final accuracy to this JSON file')
    args = p.parse_args(argv)

    gc.random.seed(args.seed)
    train_set, test_set = mnist_sets()
    n_train = min(args.limit or len(train_set), len(train_set))
    n_test = min(args.test_limit or len(test_set), len(test_set))
    train_loader = gluon.data.DataLoader(train_set, sampler=gluon.data.RandomSampler(n_train),
                                         batch_size=args.batch_size)
    test_loader = gluon.data.DataLoader(test_set, sampler=gluon.data.SequentialSampler(n_test), batch_size=100)

    net = mocha_lenet()
    net.initialize(gc.init.Xavier(), ctx=gc.cpu())
    if args.hybridize:
        net.hybridize()
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), train_loader, max_iter=args.max_iter,
                      optimizer='sgd', optimizer_params={'momentum': 0.9, 'wd': 0.0005},
                      lr_policy=solver.LRPolicy.Inv(0.01, 0.0001, 0.75),
                      momentum_policy=solver.MomPolicy.Fixed(0.9),
                      val_data=test_loader, val_every=args.val_every, summary_every=args.summary_every,
                      snapshot_every=args.snapshot_every if args.snapshot_dir else 0,
                      snapshot_dir=args.snapshot_dir)
    acc = hist['val'][-1]['accuracy'] if hist['val'] else float('nan')
    print(f"final test accuracy {acc:.4f} after {hist['iter']} iterations "
          f"({hist['seconds']:.1f} s in this run)", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'test_acc': acc, 'history': hist}, f, indent=2)
    return acc, hist


if __name__ == '__main__':
    main()
