// Package features composes the client-side channels the FreeRDP plugin
// (freerdp/plugin) can host: the parsing of its /dvc:rdpdvc,<feature>
// arguments and the features that need more than one line of wiring (PNP).
// It is apart from package freerdp so that the backend imports no channel
// protocol; the plugin's main lists the features.
package features

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/trace"
)

// Feature is a client-side capability of the plugin, switched on by
// naming it in the plugin's arguments:
//
//	xfreerdp ... /dvc:rdpdvc,simple,pnp=file:/a,pnp=file:/b
//
// FreeRDP passes argv = ["rdpdvc", "simple", "pnp=file:/a", "pnp=file:/b"]:
// each argument after the first is a feature name, optionally with
// "=value". FreeRDP splits the option at every comma, so a value cannot
// contain one; a feature whose values need options must use another
// separator.
type Feature struct {
	Name  string
	Usage string // one line: what it does and what its value means
	// Repeatable lets the name appear more than once (one value per
	// occurrence, say one device each); otherwise a repeat is an error.
	Repeatable bool
	// Setup registers the feature's listeners on r, once, with the value
	// of each occurrence in order: the text after "name=", or "" for a
	// bare name.
	Setup func(r dvc.Registrar, values []string) error
}

// TraceOption is the argument trace=FILE: record every message of every
// channel the plugin hosts in FILE (package trace; rdpdvc decode -trace
// FILE prints it).
const TraceOption = "trace"

// Argument is one parsed plugin argument.
type Argument struct {
	Name     string
	Value    string
	HasValue bool
}

// ParseArgs splits plugin arguments (argv without argv[0]) into names and
// values, in order. An empty name is an error.
func ParseArgs(args []string) ([]Argument, error) {
	var out []Argument
	for _, a := range args {
		name, value, has := strings.Cut(a, "=")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("freerdp: empty feature name in argument %q", a)
		}
		out = append(out, Argument{Name: name, Value: value, HasValue: has})
	}
	return out, nil
}

// Configure sets up on r each feature named in args (argv without
// argv[0]), in the order of first mention. Nothing named is an error, as
// is a name not in features or a repeat of a feature that is not
// Repeatable: a mistyped /dvc option must not connect silently without
// its channel.
func Configure(r dvc.Registrar, features []Feature, args []string) (err error) {
	parsed, err := ParseArgs(args)
	if err != nil {
		return err
	}
	byName := map[string]Feature{}
	for _, f := range features {
		byName[f.Name] = f
	}
	// trace=FILE is not a channel but applies to all of them: it wraps
	// the registrar every feature registers on.
	var rest []Argument
	tracePath := ""
	for _, a := range parsed {
		if a.Name != TraceOption {
			rest = append(rest, a)
			continue
		}
		if tracePath != "" || a.Value == "" {
			return fmt.Errorf("freerdp: %s=FILE: give one file, once", TraceOption)
		}
		tracePath = a.Value
	}
	parsed = rest
	if len(parsed) == 0 {
		return fmt.Errorf("freerdp: no feature named; use /dvc:rdpdvc,<feature>[,<feature>=<value>] with one of: %s", Usage(features))
	}
	if tracePath != "" {
		// Open for the life of the process, like the plugin itself: each
		// record is written whole as it happens (docs/trace.md).
		rec, cerr := trace.Create(tracePath, trace.Client)
		if cerr != nil {
			return fmt.Errorf("freerdp: %s=%s: %w", TraceOption, tracePath, cerr)
		}
		if t, ok := r.(interface{ OnTerminate(func()) }); ok {
			t.OnTerminate(func() { rec.Close() }) // the plugin's end closes the file
		}
		defer func() {
			if err != nil {
				rec.Close()
			}
		}()
		r = rec.Registrar(r)
	}
	var order []string
	values := map[string][]string{}
	for _, a := range parsed {
		f, ok := byName[a.Name]
		if !ok {
			return fmt.Errorf("freerdp: unknown feature %q; known: %s", a.Name, Usage(features))
		}
		if _, seen := values[a.Name]; seen && !f.Repeatable {
			return fmt.Errorf("freerdp: feature %q given twice", a.Name)
		}
		if _, seen := values[a.Name]; !seen {
			order = append(order, a.Name)
		}
		values[a.Name] = append(values[a.Name], a.Value)
	}
	for _, name := range order {
		if err := byName[name].Setup(r, values[name]); err != nil {
			return fmt.Errorf("freerdp: feature %q: %w", name, err)
		}
	}
	return nil
}

// Usage lists features as "name (usage); ...", sorted by name, with the
// trace option.
func Usage(features []Feature) string {
	parts := []string{TraceOption + " (=FILE: record every channel message in FILE)"}
	for _, f := range features {
		if f.Usage != "" {
			parts = append(parts, f.Name+" ("+f.Usage+")")
		} else {
			parts = append(parts, f.Name)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// NoValue wraps a Setup for a feature that takes no value, rejecting
// "name=value".
func NoValue(setup func(r dvc.Registrar) error) func(dvc.Registrar, []string) error {
	return func(r dvc.Registrar, vs []string) error {
		for _, v := range vs {
			if v != "" {
				return errors.New("takes no value")
			}
		}
		return setup(r)
	}
}
