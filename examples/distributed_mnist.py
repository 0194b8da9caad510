"""LeNet on MNIST, data-parallel over N processes (MPI ranks) with kvstore='dist_sync'.

    python -m graphc.launch -n 2 examples/distributed_mnist.py --epochs 1     # 2 ranks on this machine
    python examples/distributed_mnist.py --epochs 1                           # 1 process, no MPI needed

Each rank reads its shard of every global batch (gluon.data.SplitSampler, same seed and epoch everywhere),
computes the gradient of its local batch, and Trainer.step sums the gradients over the ranks and divides
by the global batch size, so N ranks with batch B/N take the steps one process takes with batch B on the
same samples: the accuracy matches the 1-process run of this script (up to float32 summation order).
Rank 0 shows the progress bar, evaluates and writes checkpoints (--checkpoint PREFIX; --resume continues
from one, on the same or another number of ranks).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graphc as gc  # noqa: E402
from graphc import autograd, gluon  # noqa: E402
from graphc.progress import Progress  # noqa: E402
from lenet_mnist import evaluate, lenet, mnist_sets  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--batch-size', type=int, default=128, help='the global batch (all ranks together)')
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--limit', type=int, default=0, help='train on the first N images only (0: all 60000)')
    p.add_argument('--hybridize', action='store_true')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--checkpoint', help='rank 0 writes PREFIX.params, PREFIX.states, PREFIX.json after each epoch')
    p.add_argument('--resume', action='store_true', help='continue from --checkpoint')
    p.add_argument('--json', help='rank 0 writes the results to this JSON file')
    args = p.parse_args(argv)

    kv = gc.kv.create('dist_sync')
    rank, n = kv.rank, kv.num_workers
    if args.batch_size % n:
        p.error(f"--batch-size {args.batch_size} must be a multiple of the {n} ranks")
    gc.random.seed(args.seed)  # (the Trainer also gives every rank rank 0's initial values)
    train_set, test_set = mnist_sets()
    n_train = min(args.limit or len(train_set), len(train_set))
    shard = gluon.data.SplitSampler(n_train, n, rank, seed=args.seed)
    local = args.batch_size // n
    loader = gluon.data.DataLoader(train_set, batch_sampler=gluon.data.BatchSampler(shard, local, 'discard'))

    net = lenet()
    net.initialize(gc.init.Xavier())
    start = 1
    if args.resume:
        net.load_parameters(args.checkpoint + '.params')
        with open(args.checkpoint + '.json') as f:
            start = json.load(f)['epoch'] + 1
    if args.hybridize:
        net.hybridize()
    net(gc.nd.zeros((1, 1, 28, 28)))  # shapes known before the Trainer: rank 0's values go to every rank
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': args.lr}, kvstore=kv)
    if args.resume:
        trainer.load_states(args.checkpoint + '.states')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    results = []
    for epoch in range(start, args.epochs + 1):
        shard.set_epoch(epoch)
        bar = Progress(loader, desc=f"epoch {epoch}/{args.epochs}", unit='samples', unit_scale=args.batch_size,
                       disable=rank != 0)
        t0, seen = time.perf_counter(), 0
        kv.timings.clear()
        for x, y in bar:
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(local * n)  # the global batch
            seen += local * n
        train_time = time.perf_counter() - t0
        comm = sum(kv.timings)
        if rank == 0:
            acc = evaluate(net, gluon.data.DataLoader(test_set, batch_size=1000))
            results.append({'epoch': epoch, 'ranks': n, 'test_acc': acc, 'train_seconds': train_time,
                            'allreduce_wait_seconds': comm, 'samples_per_second': seen / train_time})
            print(f"epoch {epoch}: {n} rank(s), test acc {acc:.4f}, {train_time:.1f} s ({seen / train_time:.0f} "
                  f"samples/s), waiting for allreduce {comm:.1f} s", flush=True)
            if args.checkpoint:
                net.save_parameters(args.checkpoint + '.params')
                trainer.save_states(args.checkpoint + '.states')
                with open(args.checkpoint + '.json', 'w') as f:
                    json.dump({'epoch': epoch, 'ranks': n}, f)
        kv.barrier()  # (the others wait for rank 0's evaluation and checkpoint)
    if rank == 0 and args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'epochs': results}, f, indent=2)
    return results


if __name__ == '__main__':
    main()
