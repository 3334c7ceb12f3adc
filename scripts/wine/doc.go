// Package wine holds no code: its directory is the Wine test harness for
// rdpdvc's Windows backends (test-windows.sh, go_windows_amd64_exec and the
// C sources of the test DLLs). Its one test checks that the harness works.
package wine
