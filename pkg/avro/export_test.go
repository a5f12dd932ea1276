package avro

// Reflective returns a codec like c that takes the goavro path for every
// record, hand-written codec or not: the reference tests hold a BinaryRecord
// to.
func Reflective(c *Codec) *Codec {
	r := &Codec{
		reg:     c.reg,
		maxLen:  c.maxLen,
		byName:  make(map[string]*canonical, len(c.byName)),
		writers: map[int]*writer{},
		ids:     map[[2]string]int{},
	}
	for name, cn := range c.byName {
		cp := *cn
		cp.binary = false
		r.byName[name] = &cp
	}
	return r
}
