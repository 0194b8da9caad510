"""graphc itself as a peer process, for the cold-start rows (a fresh process per sample, with an empty kernel
cache): mxnet_peer's twins run on graphc's MXNet API, hybridized, as a user's MXNet code would."""
import mxnet_peer

import graphc

mxnet_peer.use(graphc)
build, value, sync = mxnet_peer.build, mxnet_peer.value, mxnet_peer.sync
