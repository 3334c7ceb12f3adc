// Package wtstest plays Remote Desktop Services for tests of programs
// that use backend/wts under Wine, together with the test wtsapi32.dll of
// scripts/wine/dll: the DLL connects WTSVirtualChannelOpenEx to the named
// pipe named by the RDPDVC_WTS_PIPE environment variable, and what serves
// it answers as the RDP client behind Remote Desktop Services would: a
// Peer, one channel with a Handler func, or a Client, a dvc.Registrar
// serving any number of channels (the channel contract's other end).
// Windows only; never used outside tests.
package wtstest
