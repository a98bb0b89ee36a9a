package contract

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// Problem and Problems are the topology package's: a contract mistake is
// reported as a topology file's are, at file:line:col with a hint.
type (
	Problem  = topology.Problem
	Problems = topology.Problems
	Pos      = topology.Pos
)

// MaxVersion is the largest version a contract may declare; it is the
// broker's bound on the warren-version header.
const MaxVersion = 1_000_000

// Set is the contracts of a system: every job type declared, with its
// versions.
type Set struct {
	// Types by job type.
	Types map[string]*Type
	// Files are the files the set was read from, the first one the file
	// given to Load.
	Files []string
	// Topology is the topology the contracts were declared in, when Load
	// read a topology file; nil for a contracts file.
	Topology *topology.Topology
	// Warnings found while loading: mistakes that do not stop the set
	// from being used, such as a type no route sends anywhere.
	Warnings Problems

	validators validators
}

// Type is one job type's contract.
type Type struct {
	Name        string
	Description string
	// Versions by version number, from 1.
	Versions map[int]*Version
	Pos      Pos
}

// Version is one version of a job type's contract.
type Version struct {
	// Type is the job type, Number the version (1 or more).
	Type   string
	Number int
	// Description says what changed in this version, or what it is for.
	Description string
	// Deprecated marks a version producers should stop sending; consumers
	// still handle it.
	Deprecated bool
	// Schema is the payload's schema.
	Schema *Schema
	Pos    Pos
}

// Names returns the job types of the set, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.Types))
	for n := range s.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Numbers returns the type's version numbers, ascending.
func (t *Type) Numbers() []int {
	ns := make([]int, 0, len(t.Versions))
	for n := range t.Versions {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// Latest returns the type's highest version.
func (t *Type) Latest() *Version {
	ns := t.Numbers()
	if len(ns) == 0 {
		return nil
	}
	return t.Versions[ns[len(ns)-1]]
}

// ErrNoContract is returned (wrapped) by Lookup and Validate for a job type
// or version the set does not declare. Its NoContract method tells
// broker.PayloadValidator and worker.PayloadValidator users, which do not
// import this package, that the payload was not checked, not refused.
var ErrNoContract error = noContractError{}

type noContractError struct{}

func (noContractError) Error() string { return "contract: no contract" }

// NoContract reports that the error is ErrNoContract.
func (noContractError) NoContract() bool { return true }

// Lookup returns the contract of version version of jobType; version 0 (an
// unversioned job) is version 1. The error wraps ErrNoContract and says
// which versions the type has.
func (s *Set) Lookup(jobType string, version int) (*Version, error) {
	if version == 0 {
		version = 1
	}
	t, ok := s.Types[jobType]
	if !ok {
		return nil, fmt.Errorf("%w for job type %q; declare it under contracts in the topology file", ErrNoContract, jobType)
	}
	v, ok := t.Versions[version]
	if !ok {
		return nil, fmt.Errorf("%w for version %d of %q, which has versions %v", ErrNoContract, version, jobType, t.Numbers())
	}
	return v, nil
}

// Load reads the contracts declared in the file at path: a topology file
// (its contracts key and the files it includes) or a contracts file (a
// top-level types key). A file with mistakes returns Problems, every one
// found; a topology file's own problems are returned as topology.Load
// returns them.
func Load(path string) (*Set, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, true)
}

// Parse reads contracts from data as Load reads them from a file named
// filename. Files a topology file includes are read relative to
// filename's directory.
func Parse(filename string, data []byte) (*Set, error) {
	return parse(filename, data, true)
}

func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	if fi.Size() > topology.MaxFileSize {
		return nil, fmt.Errorf("contract: %s is %d bytes, more than %d; split it into several files", path, fi.Size(), topology.MaxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}
	return data, nil
}

func parse(filename string, data []byte, withTopology bool) (*Set, error) {
	p := &problems{}
	set := &Set{Types: map[string]*Type{}, Files: []string{filename}}
	root := p.document(filename, data)
	if root == nil {
		return set, p.result()
	}
	kind := fileKind(root)
	switch kind {
	case kindTopology:
		if withTopology {
			t, err := topology.Parse(filename, data)
			if err != nil {
				return nil, err
			}
			set.Topology = t
		}
		if n := mapValue(root, "contracts"); n != nil {
			d := &decoder{p: p, file: filename, set: set}
			d.contractsKey(n)
		}
	case kindContracts:
		d := &decoder{p: p, file: filename, set: set}
		d.contractsFile(root)
	default:
		p.add(pos(filename, root), "a contracts file has a top-level types key; a topology file has exchanges, queues, routes or contracts",
			"neither a topology file nor a contracts file")
	}
	if !p.failed() {
		compile(set, p)
	}
	if p.failed() {
		return nil, p.result()
	}
	if set.Topology != nil {
		unrouted(set, p)
	}
	set.Warnings = p.list
	return set, nil
}

// unrouted warns of contract types the topology sends nowhere. Replies
// (types ending in broker.ReplyTypeSuffix) need no route.
func unrouted(set *Set, p *problems) {
	for _, name := range set.Names() {
		t := set.Types[name]
		if strings.HasSuffix(name, broker.ReplyTypeSuffix) {
			continue // a reply goes where its request's reply-to says
		}
		if _, ok := set.Topology.Routes[name]; !ok {
			p.warn(t.Pos, "add a route for it under routes, or remove the contract",
				"contract for job type %q, which no route sends anywhere", name)
		}
	}
}

// includeFiles resolves include patterns relative to the including file.
func includeFiles(from, pattern string) ([]string, error) {
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(from), pattern)
	}
	return filepath.Glob(pattern)
}
