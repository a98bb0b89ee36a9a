package topology

import (
	"fmt"
	"os"
)

// Load reads and resolves the topology file at path. A file with mistakes
// returns Problems, every one found, with the warnings; a file that loads
// keeps its warnings in Topology.Warnings.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(path, data)
}

// Parse resolves a topology file's contents; filename is used in problem
// positions. See Load.
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
	list := dedupe(p.list)
	list.sort()
	if p.failed() {
		return nil, list
	}
	t := derive(f)
	t.Warnings = list
	return t, nil
}

// dedupe drops repeated problems: a node that aliases refer to several
// times is decoded, and reported, each time.
func dedupe(ps Problems) Problems {
	seen := map[Problem]bool{}
	var out Problems
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
