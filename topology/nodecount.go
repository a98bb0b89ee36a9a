package topology

// countNodes returns an upper bound on the number of YAML nodes the first two
// documents of data parse into, or a number above limit as soon as the bound
// passes it. It reads each byte once and allocates nothing, so that a file
// too large to parse is refused before the YAML library builds its tree.
//
// The bound comes from the punctuation alone, wherever it is (in a quoted
// string or a comment too), so no way of writing the file can hide a node
// from it: every node the parser makes fills a slot that some indicator
// opens, and each indicator is counted as the most nodes it can open.
//
//   - ":" and "?" open a mapping entry, key and value, and may start a
//     block mapping: 3.
//   - "-" followed by a blank is a sequence entry, and may start a block
//     sequence: 2.
//   - "[" starts a flow sequence and its first entry: 2.
//   - "{" starts a flow mapping and its first entry, key and value: 3.
//   - "," opens another flow entry, which may be a key and its value: 2.
//   - "*" is an alias node: 1.
//   - Each of the two documents read has its document node and a root,
//     which may be a lone scalar: 4 in all.
//
// Scalars fill the slots counted above, so they add nothing. Counting
// indicators inside strings and comments overestimates: a file in the
// style of docs/topology.md counts up to about twice its real nodes.
func countNodes(data []byte, limit int) int {
	n := 4
	for i, c := range data {
		switch c {
		case ':', '?', '{':
			n += 3
		case '[', ',':
			n += 2
		case '*':
			n++
		case '-':
			if blankAt(data, i+1) {
				n += 2
			}
		default:
			continue
		}
		if n > limit {
			return n
		}
	}
	return n
}

// blankAt reports whether data has a blank, a line break or its end at i, as
// the YAML scanner sees them: a "-" followed by one is a sequence entry.
func blankAt(data []byte, i int) bool {
	if i >= len(data) {
		return true
	}
	switch data[i] {
	case ' ', '\t', '\r', '\n', 0:
		return true
	case 0xC2, 0xE2:
		// The first bytes of NEL (U+0085) and of LS and PS (U+2028,
		// U+2029), which YAML 1.1 treats as line breaks. Counting every
		// such "-" keeps the bound safe whatever the next bytes are.
		return true
	}
	return false
}
