package ledger

import "bytes"

// The lookup cache hands back replies as Redis sent them, in RESP3: these
// read the two shapes lookups cache, an HGETALL's map and an HGET's bulk
// string, without building Go maps and strings for them. Anything else
// reads as "not this", and the lookup goes to Redis.

// respMap calls field for each pair of a map reply ("%n" or, in RESP2,
// "*2n", of bulk strings), false when raw is not one or field refuses a pair.
func respMap(raw []byte, field func(f, v []byte) bool) bool {
	if len(raw) == 0 || (raw[0] != '%' && raw[0] != '*') {
		return false
	}
	n, rest, ok := respLen(raw[1:])
	if !ok {
		return false
	}
	if raw[0] == '*' {
		if n%2 != 0 {
			return false
		}
		n /= 2
	}
	for range n {
		var f, v []byte
		if f, rest, ok = respBulk(rest); !ok {
			return false
		}
		if v, rest, ok = respBulk(rest); !ok {
			return false
		}
		if !field(f, v) {
			return false
		}
	}
	return len(rest) == 0
}

// respInt reads a bulk string holding a decimal integer, or a null (0).
func respInt(raw []byte) (int64, bool) {
	if bytes.Equal(raw, []byte("_\r\n")) || bytes.Equal(raw, []byte("$-1\r\n")) {
		return 0, true
	}
	b, rest, ok := respBulk(raw)
	if !ok || len(rest) != 0 {
		return 0, false
	}
	return atoi(b)
}

// respBulk reads "$len\r\nbytes\r\n" at the start of b.
func respBulk(b []byte) (v, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '$' {
		return nil, nil, false
	}
	n, rest, ok := respLen(b[1:])
	if !ok || n > len(rest)-2 || rest[n] != '\r' || rest[n+1] != '\n' {
		return nil, nil, false
	}
	return rest[:n], rest[n+2:], true
}

// respLen reads "n\r\n" at the start of b.
func respLen(b []byte) (int, []byte, bool) {
	i := bytes.Index(b, []byte("\r\n"))
	if i <= 0 || i > 9 {
		return 0, nil, false
	}
	n, ok := atoi(b[:i])
	if !ok || n < 0 {
		return 0, nil, false
	}
	return int(n), b[i+2:], true
}
