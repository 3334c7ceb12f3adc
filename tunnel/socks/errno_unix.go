//go:build !windows

package socks

import "syscall"

var (
	errConnRefused = []error{syscall.ECONNREFUSED}
	errNetUnreach  = []error{syscall.ENETUNREACH, syscall.ENETDOWN}
	errHostUnreach = []error{syscall.EHOSTUNREACH, syscall.EHOSTDOWN}
	errTimedOut    = []error{syscall.ETIMEDOUT}
)
