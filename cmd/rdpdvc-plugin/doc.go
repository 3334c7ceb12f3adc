// Command rdpdvc-plugin is not a program: built with -buildmode=c-shared
// for windows/amd64 it is rdpdvc-plugin.dll, the in-process dynamic
// virtual channel plugin that mstsc (or any DVC host: the RDP ActiveX
// control's PluginDlls, IronRDP's COM plugin loader) loads. It hosts the
// client channels rdp-simple-plugin-client.exe hosts (the Simple echo on
// dvc::sample::simpleplugin, the ECHO responder of MS-RDPEECO), chosen by
// registry values under its AddIns key, and logs to a file.
//
//	CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc \
//	    go build -buildmode=c-shared -o rdpdvc-plugin.dll ./cmd/rdpdvc-plugin
//
// Exports: VirtualChannelGetInstance, DllGetClassObject, DllCanUnloadNow,
// DllRegisterServer, DllUnregisterServer and DllInstall. docs/windows.md
// describes registration, configuration and what the Go runtime inside
// another process means.
package main

// main is never run: a c-shared build needs one.
func main() {}
