package freerdp

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Feature is a client-side capability of the plugin, switched on by
// naming it in the plugin's arguments:
//
//	xfreerdp ... /dvc:rdpdvc,simple,pnp=file:/path
//
// FreeRDP passes argv = ["rdpdvc", "simple", "pnp=file:/path"]; each
// argument after the first is a feature name, optionally with "=value".
type Feature struct {
	Name  string
	Usage string // one line: what it does and what its value means
	// Setup registers the feature's listeners on r. value is the text
	// after "name=", or "" for a bare name.
	Setup func(r dvc.Registrar, value string) error
}

// Argument is one parsed plugin argument.
type Argument struct {
	Name     string
	Value    string
	HasValue bool
}

// ParseArgs splits plugin arguments (argv without argv[0]) into names and
// values. Empty arguments and repeated names are errors.
func ParseArgs(args []string) ([]Argument, error) {
	var out []Argument
	seen := map[string]bool{}
	for _, a := range args {
		name, value, has := strings.Cut(a, "=")
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("freerdp: empty feature name in argument %q", a)
		}
		if seen[name] {
			return nil, fmt.Errorf("freerdp: feature %q given twice", name)
		}
		seen[name] = true
		out = append(out, Argument{Name: name, Value: value, HasValue: has})
	}
	return out, nil
}

// Configure sets up on r each feature named in args (argv without
// argv[0]). Nothing named is an error, as is a name not in features: a
// mistyped /dvc option must not connect silently without the channel.
func Configure(r dvc.Registrar, features []Feature, args []string) error {
	parsed, err := ParseArgs(args)
	if err != nil {
		return err
	}
	byName := map[string]Feature{}
	for _, f := range features {
		byName[f.Name] = f
	}
	if len(parsed) == 0 {
		return fmt.Errorf("freerdp: no feature named; use /dvc:rdpdvc,<feature>[,<feature>=<value>] with one of: %s", Usage(features))
	}
	for _, a := range parsed {
		f, ok := byName[a.Name]
		if !ok {
			return fmt.Errorf("freerdp: unknown feature %q; known: %s", a.Name, Usage(features))
		}
		if err := f.Setup(r, a.Value); err != nil {
			return fmt.Errorf("freerdp: feature %q: %w", a.Name, err)
		}
	}
	return nil
}

// Usage lists features as "name (usage); ...", sorted by name.
func Usage(features []Feature) string {
	var parts []string
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

// NoValue wraps a Setup that takes no value, rejecting "name=value".
func NoValue(setup func(r dvc.Registrar) error) func(dvc.Registrar, string) error {
	return func(r dvc.Registrar, v string) error {
		if v != "" {
			return errors.New("takes no value")
		}
		return setup(r)
	}
}
