// Package script drives a pnp/server.Server from a small line-oriented
// script and reports every result as one JSON line, so that a shell script
// or a test can open a redirected device, do I/O on it and check what
// happened: a script is a test that fails with the line numbers that did
// not hold. It is what `rdpdvc pnp-server -script` runs.
//
// Parse (or ParseFile) reads and checks the whole script first, before
// anything is opened; Runner.Run then runs it. docs/pnp.md has examples.
//
// # Language
//
// One command per line. A word starting with # begins a comment (at the
// start of a line, or after a blank anywhere in it); blank lines are
// skipped. Numbers are decimal or 0x hexadecimal; durations are Go's
// (100ms, 2s).
//
//	wait-device [SEL] [timeout=DUR]   wait until a device matching SEL is listed
//	wait-removed SEL [timeout=DUR]    wait until no device matches SEL
//	devices                           list the devices
//	open [NAME] SEL [access=N] [share=N] [disposition=N] [flags=N] [timeout=DUR]
//	read NAME OFFSET COUNT [timeout=DUR]
//	write NAME OFFSET DATA [timeout=DUR]
//	ioctl NAME CODE DATA OUTMAX [timeout=DUR]
//	close NAME
//	subscribe GUID|all                print custom events as they come
//	wait-event GUID|all [timeout=DUR] wait for a custom event (with GUID)
//	sleep DUR
//	wait [JOB...|all]                 wait for background jobs (all: the default)
//	cancel JOB...                     cancel background jobs, and wait for them
//	! COMMAND                         COMMAND must fail
//	COMMAND ... expect CLAUSE...      COMMAND's result must be so
//	COMMAND ... & [as=JOB]            run read, write or ioctl in the background
//
// SEL picks a device: its ClientDeviceID, "any", "hwid:ID" (one of its
// HardwareIds) or "desc:TEXT" (its DeviceDescription contains TEXT).
// NAME names a handle for later commands; open without one names it h1,
// h2, ... (in the order of such open lines) and prints the name.
// disposition also takes the Windows names (OPEN_EXISTING, ...).
//
// DATA is hex ("68656c6c6f"), "-" (nothing), "@FILE" (a file's contents,
// read when the script is parsed), text:"..." (a Go string literal: it may
// hold blanks, # and escapes such as \n or \x00) or text:... unquoted:
// then the rest of the line up to the trailing options, expect clauses, &,
// a comment, and ioctl's OUTMAX. So "write m 0 text:hello world" writes
// "hello world", "text:a#b" keeps its #, and "text:a #b" is "a" with a
// comment.
//
// Options, expect clauses and & come after the arguments, in any order.
//
// # Expectations
//
// Each line has an expectation, and "ok" in its result says whether it
// held. By default the command must succeed. "!" turns that around: the
// command must have run and failed, because the client answered with a
// failure HRESULT, a timeout expired, the handle or connection ended, or
// the server refused (no such device). Only commands that can fail take
// "!" (wait-device, wait-removed, open, read, write, ioctl, wait-event).
// A line that cannot run is never satisfied, "!" or not: a syntax error,
// an unknown command, a handle or job no earlier line opens or starts
// (all found by Parse, before anything runs), or, when it runs, a handle
// that is no longer open or a name already in use.
//
// expect adds clauses, each of which must hold too:
//
//	data=DATA    the bytes read, the IOCTL output, the custom event's data
//	count=N      how many bytes were read, written (a short or failed
//	             write's count), or came out of the IOCTL
//	hresult=H    the HRESULT the client answered with: a number
//	             (0x80070013) or a name (ERROR_WRITE_PROTECT, E_FAIL,
//	             S_OK); a failure HRESULT implies that the command fails
//
// DATA in a clause is one word: hex, -, @FILE, text:WORD or text:"...".
// Which command takes which clause: read and ioctl all three, write count
// and hresult, open hresult, wait-event data.
//
// A timeout on read, write or ioctl cancels the call when it expires: the
// server sends a Specific IoCancel Request and the result says
// "cancelled". Every command that waits for the client has a timeout by
// default: wait-* and open 30s, read, write and ioctl 30s
// (Runner.IOTimeout); timeout=0 means none.
//
// # Background jobs
//
// A read, write or ioctl line ending in & runs in the background: the
// script goes on at once. as=JOB names the job; without it the job is
// jN, N its line number. "wait JOB" waits for it to end, "cancel JOB"
// cancels its call (a Specific IoCancel Request if the client has it) and
// waits for it. The job's result line is printed when it ends, with its
// own line number and expectation; the script's end waits for the jobs
// still running, as "wait all" does.
//
// # Output
//
// Each command prints one JSON object with the keys sorted: "line" (its
// line number), "op", "ok" (the line's expectation held), "returned"
// (what the command did: "ok", "error" or "script-error"), "elapsed_ms",
// "unmet" (why ok is false), "expectFail" (a ! line), "job" (a background
// job), failures with "error" and, when the client answered with one,
// "hresult" (as "0x80070013") and "hresultName"; "cancelled" when the
// call was cancelled, "timedOut" when a wait's timeout expired, and the
// command's results: "handle", "device", "offset", "n" (bytes read,
// written or returned), "data" (hex), "jobs". A background job prints
// {"event":"job-started","job":...,"line":N} when it starts. Device
// arrivals and removals print {"event":"device-arrived"|"device-removed",
// "device":{...}} (see Runner.DeviceEvent), custom events
// {"event":"custom-event",...} with the handle's name (an event raised
// while its handle is being opened is printed once the open returns).
package script
