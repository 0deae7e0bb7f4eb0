package contract

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// An Answer is one response the document describes: a method, a path as
// the document writes it, and a status ("200", "404", ...). HEAD is
// counted as the GET it answers like.
type Answer struct {
	Method, Path, Status string
}

func (a Answer) String() string { return a.Method + " " + a.Path + " " + a.Status }

var (
	checkedMu sync.Mutex
	checked   = map[Answer]bool{}
)

// record notes an answer that Check found documented and matching.
func record(a Answer) {
	checkedMu.Lock()
	defer checkedMu.Unlock()
	checked[a] = true
}

// Documented returns every answer of the document, sorted; it fails when
// openapi.yaml cannot be read.
func Documented() ([]Answer, error) {
	load()
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	var all []Answer
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				all = append(all, Answer{Method: method, Path: path, Status: status})
			}
		}
	}
	slices.SortFunc(all, func(a, b Answer) int { return strings.Compare(a.String(), b.String()) })
	return all, nil
}

// Unchecked returns the answers of the document that no Check of this
// test binary has validated, except those in allow (answer -> why no test
// can provoke it), and the entries of allow that are stale: checked after
// all, or not in the document. A test binary that runs all of its tests
// calls it from TestMain once they are done, so that a documented answer
// no test ever saw fails the run rather than going unnoticed. It fails
// when openapi.yaml cannot be read.
func Unchecked(allow map[Answer]string) (missing, stale []Answer, err error) {
	all, err := Documented()
	if err != nil {
		return nil, nil, err
	}
	checkedMu.Lock()
	defer checkedMu.Unlock()
	documented := map[Answer]bool{}
	for _, a := range all {
		documented[a] = true
		if !checked[a] {
			if _, ok := allow[a]; !ok {
				missing = append(missing, a)
			}
		}
	}
	for a := range allow {
		if checked[a] || !documented[a] {
			stale = append(stale, a)
		}
	}
	slices.SortFunc(stale, func(a, b Answer) int { return strings.Compare(a.String(), b.String()) })
	return missing, stale, nil
}
