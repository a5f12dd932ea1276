package events

// ValidID says whether s is an id as every contract names them: SKUs,
// locations, groups, documents, holds, snapshots: 1 to 64 characters of
// A-Z a-z 0-9 . _ -.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
