package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	yaml "go.yaml.in/yaml/v3"
)

// Limits on a topology file, so that no file can make loading take
// unbounded memory or time. Each is far above what a broker holds: a file
// with 50,000 queues, each with a binding and a route, and an exchange for
// every 100 of them, is 7.5 MB, 752,000 nodes, and 1,303,000 nodes by the
// count made before parsing; it nests 4 levels deep and has 150,500
// entities. docs/topology.md#limits lists them with their errors.
const (
	// MaxFileSize is the largest topology file, in bytes. Load reads no
	// more than this (and one byte) of a file.
	MaxFileSize = 64 << 20
	// MaxNodes is the most YAML nodes (keys, values, lists and mappings) a
	// topology file may have. It is checked twice: before parsing, against
	// countNodes's bound, which is never below the real count and about
	// twice it for files written as docs/topology.md writes them; after
	// parsing, exactly, with each alias counted as the nodes it stands for.
	MaxNodes = 2_000_000
	// MaxDepth is how deep a topology file's collections may nest, aliases
	// followed; the document's top-level mapping is at depth 1.
	MaxDepth = 64
	// MaxEntities is the most exchanges, queues, bindings (one for each
	// routing key) and routes a topology file may declare in all. It bounds the memory a file of
	// terse entries takes within MaxNodes: a queue written as its name and
	// a colon costs about 4 KB to check and resolve.
	MaxEntities = 250_000
)

// splitHint is what to do about a file over a limit.
const splitHint = "split it into several topology files, each applied on its own"

// readLimited reads a file for Load: at most MaxFileSize+1 bytes, so that a
// file over the limit is refused without reading it all. A regular file
// larger than the limit is not read at all.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	first := 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > MaxFileSize {
			return nil, errTooBig
		}
		// The whole file in one read, and one more byte to see it end.
		first = int(fi.Size()) + 1
	}
	data, err := readUpTo(f, MaxFileSize+1, first)
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, errTooBig
	}
	return data, nil
}

// readUpTo reads r to its end or to limit bytes, whichever comes first, in
// chunks of first bytes and then twice as many each time, up to 8 MiB,
// joined at the end: it allocates about twice what it reads whatever r is,
// and a file read in its first chunk once.
func readUpTo(r io.Reader, limit, first int) ([]byte, error) {
	var chunks [][]byte
	total, size := 0, first
	for total < limit {
		chunk := make([]byte, min(size, limit-total))
		n, err := io.ReadFull(r, chunk)
		chunks = append(chunks, chunk[:n])
		total += n
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		size = min(2*size, 8<<20)
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	return bytes.Join(chunks, nil), nil
}

// errTooBig is readLimited's answer for a file over MaxFileSize; Load turns
// it into the same problem Parse reports.
var errTooBig = fmt.Errorf("topology: file larger than %d bytes", MaxFileSize)

// tooBig reports a file larger than MaxFileSize.
func (d *decoder) tooBig() {
	d.p.add(Pos{File: d.file, Line: 1, Column: 1}, splitHint,
		"the file is larger than %d MiB, the most a topology file may be (topology.MaxFileSize)", MaxFileSize>>20)
}

// small reports whether data is within MaxFileSize and, by countNodes's
// bound, MaxNodes; it reports a problem when not. It reads data once and
// allocates nothing, so it is safe on any input.
func (d *decoder) small(data []byte) bool {
	if len(data) > MaxFileSize {
		d.tooBig()
		return false
	}
	if countNodes(data, MaxNodes) > MaxNodes {
		d.p.add(Pos{File: d.file, Line: 1, Column: 1}, splitHint+"; docs/topology.md#limits says how nodes are counted",
			"the file has too many YAML nodes: more than %d (topology.MaxNodes) by the count made before parsing", MaxNodes)
		return false
	}
	return true
}

// bounded reports whether the document stays within MaxNodes with its
// aliases expanded and within MaxDepth with aliases followed, and has no
// alias inside the node it refers to; it reports a problem when not. It
// walks the tree once: only anchored nodes, which aliases may reach again,
// are remembered.
func (d *decoder) bounded(root *yaml.Node) bool {
	type measure struct{ size, height int }
	const inProgress = -1
	anchored := map[*yaml.Node]measure{}
	var cyclic, deep *yaml.Node
	// walk returns the size of n's subtree with aliases expanded, capped
	// at MaxNodes+1, and its height; n is at depth level.
	var walk func(n *yaml.Node, level int) measure
	walk = func(n *yaml.Node, level int) measure {
		if level > MaxDepth {
			if deep == nil {
				deep = n
			}
			return measure{1, 1}
		}
		if n.Anchor != "" {
			if m, ok := anchored[n]; ok {
				if m.size == inProgress {
					return measure{MaxNodes + 1, 1}
				}
				return m
			}
			anchored[n] = measure{inProgress, 0}
		}
		m := measure{1, 1}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if anchored[n.Alias].size == inProgress && cyclic == nil {
				cyclic = n
			}
			// An alias stands for its node at the alias's own depth.
			a := walk(n.Alias, level)
			m = measure{min(1+a.size, MaxNodes+1), a.height}
			if level+a.height-1 > MaxDepth && deep == nil {
				deep = n
			}
		}
		for _, c := range n.Content {
			cm := walk(c, level+1)
			m.size = min(m.size+cm.size, MaxNodes+1)
			m.height = max(m.height, cm.height+1)
		}
		if n.Anchor != "" {
			anchored[n] = m
		}
		return m
	}
	size := walk(root, 1).size
	switch {
	case cyclic != nil:
		d.p.add(d.pos(cyclic), "an alias cannot refer to a node that contains it",
			"alias *%s refers to the node it is part of", cyclic.Value)
	case deep != nil:
		d.tooDeep(d.pos(deep))
	case size > MaxNodes:
		d.p.add(d.pos(root), "write the file out without so many aliases, or "+splitHint,
			"the document is too large with its aliases expanded: more than %d YAML nodes (topology.MaxNodes)", MaxNodes)
	default:
		return true
	}
	return false
}

// tooDeep reports a file that nests deeper than MaxDepth, or than the YAML
// library's own limit, which is higher.
func (d *decoder) tooDeep(at Pos) {
	d.p.add(at, "a topology file needs a few levels; look for a runaway list or alias",
		"the file nests deeper than %d levels (topology.MaxDepth)", MaxDepth)
}
