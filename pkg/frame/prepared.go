package frame

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/flate"
)

// DefaultMinCompressSize is the payload size below which a Prepared frame is sent
// uncompressed even to connections that negotiated permessage-deflate: under ~256
// bytes deflate saves a few dozen bytes at best (JSON this short has little
// repetition, and a dynamic-Huffman block header alone is ~60 bytes), which is not
// worth the CPU or the added latency.
const DefaultMinCompressSize = 256

// DefaultCompressionLevel is the flate level of Prepared frames. Level 1 is ~25%
// faster than 2 on roomcast-like JSON and loses ~2% of ratio (measured:
// 16 KiB of events compress to 9.1% at level 1, 8.9% at 2, 8.6% at 5, at 830, 630
// and 190 MB/s); a broadcast is compressed once per node, so speed matters less than
// for per-connection compression, but ratio barely improves past level 1.
const DefaultCompressionLevel = 1

// Compression configures the compression of Prepared frames. The zero value means
// the defaults; pkg/loop fills it from --compression-min-size.
type Compression struct {
	// MinSize is the smallest payload that is compressed, in bytes; 0 means
	// DefaultMinCompressSize, a negative value compresses every payload.
	MinSize int
	// Level is the flate level, 1 (fastest) to 9 (smallest); 0 (or anything out of
	// range) means DefaultCompressionLevel.
	Level int
}

// Prepared is an immutable server frame (FIN set, unfragmented) shared by many
// connections: a broadcast is encoded once per node and the same bytes are written
// to every member. Safe for concurrent use.
type Prepared struct {
	frame    []byte // header + payload, uncompressed
	hdr      uint8  // header length in frame
	op       Opcode
	level    int8
	minSize  int
	once     sync.Once
	deflated []byte // RSV1 frame, built by the first Bytes(true); nil if not smaller
}

// NewPrepared returns a frame carrying payload with the default Compression. The
// payload is copied once, after the header, so that each member's write is a single
// contiguous slice; the caller may reuse payload afterwards. A control frame's
// payload must be at most 125 bytes.
func NewPrepared(op Opcode, payload []byte) *Prepared {
	return NewPreparedWith(op, payload, Compression{})
}

// NewPreparedWith is NewPrepared with explicit compression settings.
func NewPreparedWith(op Opcode, payload []byte, c Compression) *Prepared {
	h := HeaderSize(len(payload))
	frame := make([]byte, 0, h+len(payload))
	frame = AppendHeader(frame, true, false, op, len(payload))
	frame = append(frame, payload...)
	return newPrepared(op, frame, h, c)
}

// NewPreparedInPlace is NewPreparedWith without the copy: buf[:MaxHeaderSize] is
// room for the header and buf[MaxHeaderSize:] is the payload. It takes ownership of
// buf; the caller must not modify it afterwards. For encoders that can reserve the
// room up front:
//
//	buf := make([]byte, frame.MaxHeaderSize, frame.MaxHeaderSize+n)
//	buf = appendJSON(buf, msg)
//	f := frame.NewPreparedInPlace(frame.OpText, buf, c)
//
// It panics if buf is shorter than MaxHeaderSize.
func NewPreparedInPlace(op Opcode, buf []byte, c Compression) *Prepared {
	n := len(buf) - MaxHeaderSize
	h := HeaderSize(n)
	AppendHeader(buf[MaxHeaderSize-h:MaxHeaderSize-h], true, false, op, n)
	return newPrepared(op, buf[MaxHeaderSize-h:], h, c)
}

// newPrepared fills in a Prepared around a complete frame with an h-byte header.
func newPrepared(op Opcode, frame []byte, h int, c Compression) *Prepared {
	f := &Prepared{frame: frame, hdr: uint8(h), op: op, minSize: c.MinSize, level: int8(c.Level)}
	if f.minSize == 0 {
		f.minSize = DefaultMinCompressSize
	}
	if f.level <= 0 || f.level > 9 {
		f.level = DefaultCompressionLevel
	}
	return f
}

// Op returns the frame's opcode.
func (f *Prepared) Op() Opcode { return f.op }

// Payload returns the uncompressed payload. Do not modify it.
func (f *Prepared) Payload() []byte { return f.frame[f.hdr:] }

// Bytes returns the whole frame, header and payload. Do not modify it.
//
// With deflate=true (the connection negotiated permessage-deflate), a text or binary
// payload of at least MinSize bytes is returned as the RSV1 compressed frame. It is
// compressed at most once per Prepared, by the first caller (the others wait for it),
// with no context takeover, so every member that negotiated compression gets the
// same bytes. If compression does not make the frame smaller, the plain frame is
// returned: an uncompressed message is legal on a deflate connection.
//
// Hot path: see BenchmarkPreparedBytes*.
func (f *Prepared) Bytes(deflate bool) []byte {
	return f.BytesMin(deflate, f.minSize)
}

// BytesMin is Bytes with the minimum payload size for compression given by
// the caller instead of the frame's: the connection layer applies the node's
// --compression-min-size to frames built anywhere. Every caller on one node
// must pass the same minSize (the compressed form is cached once).
func (f *Prepared) BytesMin(deflate bool, minSize int) []byte {
	if !deflate || f.op.IsControl() || len(f.frame)-int(f.hdr) < minSize {
		return f.frame
	}
	f.once.Do(f.compress)
	if f.deflated != nil {
		return f.deflated
	}
	return f.frame
}

// compress builds f.deflated.
func (f *Prepared) compress() {
	z := getDeflater(int(f.level))
	defer putDeflater(z)
	z.out.Reset()
	z.w.Reset(&z.out)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = z.w.Write(f.Payload())
	_ = z.w.Flush()
	// RFC 7692 §7.2.1: a sync flush ends with an empty stored block, 00 00 FF FF,
	// which the sender strips and the receiver appends back.
	c := bytes.TrimSuffix(z.out.Bytes(), deflateTail[:4])
	if HeaderSize(len(c))+len(c) >= len(f.frame) {
		return
	}
	out := make([]byte, 0, HeaderSize(len(c))+len(c))
	out = AppendHeader(out, true, true, f.op, len(c))
	f.deflated = append(out, c...)
}

// deflater is a pooled flate writer with its scratch output. A klauspost flate
// writer allocates 0.8 MiB at level 1 and 1.1–1.4 MiB at higher levels (hash tables
// and window, measured): far beyond the 2 KiB per-connection budget, and with no
// context takeover there is nothing to keep between messages anyway.
type deflater struct {
	w     *flate.Writer
	out   bytes.Buffer
	level int
}

// deflaters holds one pool per flate level (index 1–9).
var deflaters [10]sync.Pool

// scratchMax bounds the scratch buffer a pooled deflater keeps: a rare huge broadcast
// should not pin its size in the pool forever.
const scratchMax = 256 << 10

func getDeflater(level int) *deflater {
	if v := deflaters[level].Get(); v != nil {
		return v.(*deflater)
	}
	w, err := flate.NewWriter(nil, level)
	if err != nil {
		panic("frame: flate level " + err.Error()) // level is checked in NewPreparedWith
	}
	return &deflater{w: w, level: level}
}

func putDeflater(z *deflater) {
	if z.out.Cap() > scratchMax {
		z.out = bytes.Buffer{}
	}
	deflaters[z.level].Put(z)
}
