package layers

import (
	"context"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// hashPipe reads src in its own goroutine and hashes what it reads in a
// second one, while the caller consumes the same bytes through Read. On two
// cores this takes the hashing of the uncompressed stream off the path of
// decompression and tar parsing.
type hashPipe struct {
	data   chan *pipeChunk
	stop   chan struct{}
	hashed chan struct{}
	cur    *pipeChunk
	off    int
	err    error
	once   sync.Once
}

type pipeChunk struct {
	buf  []byte
	n    int
	err  error
	refs atomic.Int32
}

const (
	pipeChunkSize = 256 << 10
	pipeDepth     = 8
)

var chunkPool = sync.Pool{New: func() any { return &pipeChunk{buf: make([]byte, pipeChunkSize)} }}

func (c *pipeChunk) release() {
	if c.refs.Add(-1) == 0 {
		c.err = nil
		c.n = 0
		chunkPool.Put(c)
	}
}

// newHashPipe starts reading src. h receives every byte read; call Wait
// before using h.
func newHashPipe(ctx context.Context, src io.Reader, h hash.Hash) *hashPipe {
	p := &hashPipe{
		data:   make(chan *pipeChunk, pipeDepth),
		stop:   make(chan struct{}),
		hashed: make(chan struct{}),
	}
	toHash := make(chan *pipeChunk, pipeDepth)
	go func() {
		defer close(p.hashed)
		for c := range toHash {
			h.Write(c.buf[:c.n])
			c.release()
		}
	}()
	go func() {
		defer close(toHash)
		defer close(p.data)
		for {
			c := chunkPool.Get().(*pipeChunk)
			c.refs.Store(2)
			c.n, c.err = fill(src, c.buf)
			if c.err == nil {
				if err := ctx.Err(); err != nil {
					c.err = err
				}
			}
			// Once sent, c belongs to the receivers: keep what is needed.
			last := c.err != nil
			select {
			case toHash <- c:
			case <-p.stop:
				return
			}
			select {
			case p.data <- c:
			case <-p.stop:
				c.release()
				return
			}
			if last {
				return
			}
		}
	}()
	return p
}

func (p *hashPipe) Read(b []byte) (int, error) {
	for {
		if p.err != nil {
			return 0, p.err
		}
		if p.cur == nil {
			c, ok := <-p.data
			if !ok {
				p.err = io.ErrClosedPipe
				continue
			}
			p.cur, p.off = c, 0
		}
		if p.off < p.cur.n {
			n := copy(b, p.cur.buf[p.off:p.cur.n])
			p.off += n
			return n, nil
		}
		p.err = p.cur.err
		p.cur.release()
		p.cur = nil
	}
}

// Close stops the reader goroutine and waits for the hasher.
func (p *hashPipe) Close() {
	p.once.Do(func() {
		close(p.stop)
		if p.cur != nil {
			p.cur.release()
			p.cur = nil
		}
		for c := range p.data {
			c.release()
		}
		<-p.hashed
	})
}

// fill reads into buf until it is full or src fails; unlike io.ReadFull it
// passes src's errors through unchanged (io.EOF at the end of the stream).
func fill(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := src.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
