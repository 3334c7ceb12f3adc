//go:build freerdp && freerdp3

package main

// The two tags choose the headers of different FreeRDP majors for the
// same structures: a build with both is an error, not a guess. (The
// plugin's other files build with exactly one of the tags.)
var _ = build_with_either_tags_freerdp_or_tags_freerdp3_not_both
