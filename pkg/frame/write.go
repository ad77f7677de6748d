package frame

import (
	"encoding/binary"
	"unicode/utf8"
)

// MaxHeaderSize is the longest server frame header: 2 bytes, plus an 8-byte extended
// length, and no mask (servers never mask, RFC 6455 §5.1).
const MaxHeaderSize = 10

// HeaderSize returns the size of a server frame header for a payload of length bytes.
func HeaderSize(length int) int {
	switch {
	case length <= 125:
		return 2
	case length <= 0xFFFF:
		return 4
	}
	return 10
}

// AppendHeader appends an unmasked server frame header to dst. rsv1 marks the first
// frame of a compressed message (RFC 7692 §6). length must not be negative.
func AppendHeader(dst []byte, fin bool, rsv1 bool, op Opcode, length int) []byte {
	b0 := byte(op & 0x0F)
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	switch {
	case length <= 125:
		return append(dst, b0, byte(length))
	case length <= 0xFFFF:
		return append(dst, b0, 126, byte(length>>8), byte(length))
	}
	dst = append(dst, b0, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(length))
}

// AppendFrame appends a whole unfragmented, uncompressed server frame to dst. For a
// control frame, payload must be at most 125 bytes.
func AppendFrame(dst []byte, op Opcode, payload []byte) []byte {
	dst = AppendHeader(dst, true, false, op, len(payload))
	return append(dst, payload...)
}

// AppendClose appends a whole close frame to dst. A code that must never be sent
// (0, CloseNoStatus, CloseAbnormal, 1015) gives an empty close frame, which the peer
// reads as "no status". reason is cut to MaxCloseReason bytes, at a UTF-8 character
// boundary so that the peer does not fail the connection over our own close frame.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	switch code {
	case 0, CloseNoStatus, CloseAbnormal, 1015:
		return AppendHeader(dst, true, false, OpClose, 0)
	}
	if len(reason) > MaxCloseReason {
		cut := MaxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	dst = AppendHeader(dst, true, false, OpClose, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}
