"""python -m graphc.launch -n N [-H host1,host2 | --hostfile FILE] script.py args...

Starts N ranks of `script.py` with mpirun (from `pip install 'graphc[dist]'`, or the one on PATH), with
this Python, the flags one host needs (--allow-run-as-root as root, --oversubscribe when N is more than
the cores) and every output line prefixed by its rank ("[1] ..."). Scripts use
`gc.kv.create('dist_sync')` (or Trainer(..., kvstore='dist_sync')); plain `mpirun -np N python script.py`
works too. The exit status is mpirun's: if one rank fails, mpirun stops the others and says which.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

_TAG = re.compile(rb'^\[\d+,(\d+)\]<(stdout|stderr)>:\s?')


def find_mpirun():
    here = os.path.join(os.path.dirname(sys.executable), 'mpirun')  # the [dist] extra's, in this environment
    found = here if os.access(here, os.X_OK) else shutil.which('mpirun')
    if not found:
        sys.exit("graphc.launch: mpirun not found: pip install 'graphc[dist]' (mpi4py and an Open MPI wheel) or "
                 "install MPI")
    return found


def command(n, script_args, hosts=None, hostfile=None, mpirun=None, extra=()):
    cmd = [mpirun or find_mpirun(), '-np', str(n), '--tag-output']
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        cmd.append('--allow-run-as-root')
    if hosts:
        cmd += ['-H', hosts]
    elif hostfile:
        cmd += ['--hostfile', hostfile]
    if (not hosts and not hostfile) or n > (os.cpu_count() or 1):
        cmd.append('--oversubscribe')  # one host: as many ranks as asked, even past the cores
    for var in ('PYTHONPATH', 'GRAPHC_ENGINE', 'GRAPHC_BUCKET_MB', 'OMP_NUM_THREADS'):
        if var in os.environ:
            cmd += ['-x', var]  # (mpirun passes the environment on one host; remote ranks need -x)
    return cmd + list(extra) + [sys.executable] + list(script_args)


def _relay(src, dst):
    """Copy mpirun's tagged lines to dst as '[rank] line'."""
    for line in iter(src.readline, b''):
        m = _TAG.match(line)
        if m and not line[m.end():].strip(b'\x00\n'):
            continue  # (Open MPI ends a tagged stream with an empty NUL line)
        if m:
            line = b'[' + m.group(1) + b'] ' + line[m.end():]
        dst.buffer.write(line)
        dst.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(prog='python -m graphc.launch', description=__doc__.split('\n\n')[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('-n', '--num-workers', type=int, required=True, help='number of ranks (processes)')
    ap.add_argument('-H', '--hosts', help='comma-separated hosts (host:slots), for several machines')
    ap.add_argument('--hostfile', help="an MPI hostfile, for several machines")
    ap.add_argument('--mpi-args', default='', help='more mpirun flags, as one string')
    ap.add_argument('script', help='the training script')
    ap.add_argument('args', nargs=argparse.REMAINDER, help="the script's arguments")
    a = ap.parse_args(argv)
    if a.num_workers < 1:
        ap.error('-n must be at least 1')
    cmd = command(a.num_workers, [a.script] + a.args, a.hosts, a.hostfile, extra=a.mpi_args.split())
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    threads = [threading.Thread(target=_relay, args=(p.stdout, sys.stdout), daemon=True),
               threading.Thread(target=_relay, args=(p.stderr, sys.stderr), daemon=True)]
    for t in threads:
        t.start()
    try:
        rc = p.wait()
    except KeyboardInterrupt:
        p.send_signal(signal.SIGINT)  # mpirun passes it on to every rank
        rc = p.wait()
    for t in threads:
        t.join(timeout=5)
    return rc


if __name__ == '__main__':
    sys.exit(main())
