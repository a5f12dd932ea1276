package ledger

import (
	"fmt"
	"maps"
	"strconv"
	"testing"
)

func respOf(m map[string]string) []byte {
	b := []byte("%" + strconv.Itoa(len(m)) + "\r\n")
	for k, v := range m {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
	}
	return b
}

func TestRESPMap(t *testing.T) {
	m := map[string]string{"oh": "10", "h:A|B": "3:1795680120000", "s:rel|20786": "25", "": "", "crlf": "a\r\nb"}
	got := map[string]string{}
	if !respMap(respOf(m), func(f, v []byte) bool { got[string(f)] = string(v); return true }) || !maps.Equal(got, m) {
		t.Fatalf("read %v from %v", got, m)
	}
	for _, bad := range []string{"", "%1\r\n$2\r\noh\r\n", "%1\r\n$2\r\noh\r\n$1\r\n1\r\nextra", "+OK\r\n", "%-1\r\n", "%1\r\n$9\r\noh\r\n$1\r\n1\r\n", "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"} {
		if respMap([]byte(bad), func(f, v []byte) bool { return true }) {
			t.Errorf("%q read as a map", bad)
		}
	}
	for raw, want := range map[string]int64{"$2\r\n42\r\n": 42, "_\r\n": 0, "$-1\r\n": 0, "$2\r\n-7\r\n": -7} {
		if n, ok := respInt([]byte(raw)); !ok || n != want {
			t.Errorf("respInt(%q) = %d %v, want %d", raw, n, ok, want)
		}
	}
	if _, ok := respInt([]byte("$2\r\nx1\r\n")); ok {
		t.Error("a non-number read as one")
	}
}

// The cached replies come from Redis, but a reader of bytes must not panic
// on any of them.
func FuzzRESPMap(f *testing.F) {
	f.Add(respOf(map[string]string{"oh": "10", "v": "3"}))
	f.Add([]byte("%1\r\n$2\r\noh\r\n$1\r\n1\r\n"))
	f.Add([]byte("$2\r\n42\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p positionParser
		if respMap(raw, p.field) {
			p.result(0)
		}
		respInt(raw)
	})
}
