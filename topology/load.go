package topology

import (
	"errors"
	"fmt"
)

// Load reads and resolves the topology file at path. A file with mistakes
// returns Problems, every one found, with the warnings; a file that loads
// keeps its warnings in Topology.Warnings. Load reads no more than
// MaxFileSize bytes and one: a larger file is a problem too.
func Load(path string) (*Topology, error) {
	data, err := readLimited(path)
	if errors.Is(err, errTooBig) {
		d := &decoder{file: path, p: &collector{}}
		d.tooBig()
		return nil, d.p.list
	}
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(path, data)
}

// Parse resolves a topology file's contents; filename is used in problem
// positions. See Load. Contents over MaxFileSize, MaxNodes or MaxDepth are
// refused before they are parsed (MaxFileSize, MaxNodes) or checked.
func Parse(filename string, data []byte) (*Topology, error) {
	p := &collector{}
	d := &decoder{file: filename, p: p}
	root := d.document(data)
	f := decodeFile(d, root)
	if root != nil {
		newChecker(f, p).check()
	}
	if root == nil && !p.failed() {
		p.warn(Pos{File: filename, Line: 1, Column: 1}, "declare exchanges, queues, bindings and routes", "the file is empty")
	}
	list := p.problems(filename)
	if p.failed() {
		return nil, list
	}
	t := derive(f)
	t.Warnings = list
	return t, nil
}
