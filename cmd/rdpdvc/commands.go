package main

import (
	"context"
	"io"
	"maps"
	"slices"
)

// command is one subcommand of rdpdvc. Each lives in its own file and
// adds itself to commands in init, so that adding one (pnp-client,
// pnp-server, ...) touches no other file.
type command struct {
	name    string
	summary string // one line for `rdpdvc help`
	// run gets the arguments after the subcommand's name and returns the
	// exit status (0 ok, 1 failure, 2 bad usage).
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("rdpdvc: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

func commandNames() []string { return slices.Sorted(maps.Keys(commands)) }
