// Package wtstest plays Remote Desktop Services for tests of programs
// that use backend/wts under Wine, together with the test wtsapi32.dll of
// scripts/wine/dll: the DLL connects WTSVirtualChannelOpenEx to the named
// pipe a Peer serves (named by the RDPDVC_WTS_PIPE environment variable),
// and the Peer answers as the RDP client behind Remote Desktop Services
// would. Windows only; never used outside tests.
package wtstest
