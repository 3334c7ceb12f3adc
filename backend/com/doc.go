// Package com is the Windows client backend of the channel API: an mstsc
// dynamic virtual channel plugin served by an out-of-process COM server
// (LocalServer32), and its registration.
//
// mstsc finds plugins under ...\Terminal Server Client\Default\AddIns,
// creates each by CLSID (CoCreateInstance, which starts the registered exe
// with -Embedding) and drives it through IWTSPlugin; the plugin creates
// listeners with IWTSVirtualChannelManager::CreateListener, and each
// channel the server opens arrives through
// IWTSListenerCallback::OnNewChannelConnection, then
// IWTSVirtualChannelCallback::OnDataReceived/OnClose, with
// IWTSVirtualChannel::Write to answer. This package implements those
// interfaces with hand-written vtables (no maintained Go library serves
// COM objects) and presents them to rdpdvc's channel protocols as a
// dvc.Registrar, so any dvc.Listener (Simple's Echoer, the PNP client)
// runs inside the plugin unchanged.
//
// InProc serves the same objects to a host in the process, for the
// in-process plugin DLL (cmd/rdpdvc-plugin): VirtualChannelGetInstance and
// DllGetClassObject semantics, direct calls on any thread, panics in
// channel handlers recovered.
//
// Registration (HKCU or HKLM) is in register.go and register_windows.go,
// and the DLL's DllPath form in register_dll*.go; the key layout is
// OS-independent and tested everywhere.
package com
