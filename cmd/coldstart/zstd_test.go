package main

import (
	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
)

func zstdOpenOption() estargz.OpenOption {
	return estargz.WithDecompressors(new(zstdchunked.Decompressor))
}
