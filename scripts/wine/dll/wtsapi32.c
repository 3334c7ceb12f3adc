/*
 * A test wtsapi32.dll for running backend/wts under Wine.
 *
 * Wine's own wtsapi32 is stubs: WTSVirtualChannelOpenEx always fails. This
 * one implements the six functions backend/wts calls on top of a
 * message-mode named pipe that the Go test serves, so that the real code
 * path (LoadLibrary from System32, the calls, GetLastError, the file handle
 * with overlapped I/O on an I/O completion port) runs against a peer that
 * behaves like Remote Desktop Services:
 *
 *   - WTSVirtualChannelOpenEx connects to the pipe named by the environment
 *     variable RDPDVC_WTS_PIPE, sends one message "OPEN <session> <flags>
 *     <name>" and waits for a 4-byte little-endian status: 0 opens the
 *     channel, anything else fails the call with that value as the last
 *     error (the test chooses what a client without a listener returns).
 *     Without the variable it fails with ERROR_INVALID_FUNCTION, as on a
 *     console session.
 *   - Every pipe message from the peer is one read: a CHANNEL_PDU_HEADER
 *     and its chunk, as WTSVirtualChannelRead and ReadFile return them for
 *     a dynamic channel.
 *   - Every WTSVirtualChannelWrite (and every WriteFile on the file handle)
 *     is one pipe message holding the whole message.
 *   - WTSVirtualChannelQuery(WTSVirtualFileHandle) returns the pipe handle
 *     itself, opened with FILE_FLAG_OVERLAPPED like the real one.
 *
 * Built by test-windows.sh with x86_64-w64-mingw32-gcc -shared; installed
 * into the prefix's system32 and loaded with WINEDLLOVERRIDES=wtsapi32=n.
 * Never shipped.
 */
#include <windows.h>
#include <stdio.h>
#include <string.h>

#define WTS_CURRENT_SESSION ((DWORD)-1)
#define WTS_VIRTUAL_FILE_HANDLE 1

typedef struct {
	DWORD magic;
	HANDLE pipe;
} channel;

#define CHANNEL_MAGIC 0x43535457 /* "WTSC" */

static channel *get(HANDLE h)
{
	channel *c = (channel *)h;
	if (c == NULL || c->magic != CHANNEL_MAGIC)
		return NULL;
	return c;
}

/* One overlapped operation on c->pipe, waited for. */
static BOOL io(HANDLE pipe, BOOL rd, void *buf, DWORD len, DWORD *done)
{
	OVERLAPPED ov;
	BOOL ok;
	memset(&ov, 0, sizeof ov);
	ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
	if (ov.hEvent == NULL)
		return FALSE;
	ok = rd ? ReadFile(pipe, buf, len, NULL, &ov) : WriteFile(pipe, buf, len, NULL, &ov);
	if (ok || GetLastError() == ERROR_IO_PENDING)
		ok = GetOverlappedResult(pipe, &ov, done, TRUE);
	DWORD err = GetLastError();
	CloseHandle(ov.hEvent);
	SetLastError(err);
	return ok;
}

__declspec(dllexport) HANDLE WINAPI WTSVirtualChannelOpenEx(DWORD session, LPSTR name, DWORD flags)
{
	char path[512], msg[600];
	DWORD n, status = 0;
	HANDLE pipe;
	channel *c;

	if (session != WTS_CURRENT_SESSION || name == NULL) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return NULL;
	}
	n = GetEnvironmentVariableA("RDPDVC_WTS_PIPE", path, sizeof path);
	if (n == 0 || n >= sizeof path) {
		SetLastError(ERROR_INVALID_FUNCTION);
		return NULL;
	}
	pipe = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
	if (pipe == INVALID_HANDLE_VALUE)
		return NULL;
	DWORD mode = PIPE_READMODE_MESSAGE;
	if (!SetNamedPipeHandleState(pipe, &mode, NULL, NULL))
		goto fail;
	n = (DWORD)snprintf(msg, sizeof msg, "OPEN %lu %lu %s", (unsigned long)session, (unsigned long)flags, name);
	if (n >= sizeof msg) {
		SetLastError(ERROR_INVALID_PARAMETER);
		goto fail;
	}
	if (!io(pipe, FALSE, msg, n, &n))
		goto fail;
	if (!io(pipe, TRUE, &status, sizeof status, &n))
		goto fail;
	if (n != sizeof status) {
		SetLastError(ERROR_GEN_FAILURE);
		goto fail;
	}
	if (status != 0) {
		CloseHandle(pipe);
		SetLastError(status);
		return NULL;
	}
	c = (channel *)LocalAlloc(LPTR, sizeof *c);
	if (c == NULL)
		goto fail;
	c->magic = CHANNEL_MAGIC;
	c->pipe = pipe;
	return (HANDLE)c;
fail:
	n = GetLastError();
	CloseHandle(pipe);
	SetLastError(n);
	return NULL;
}

__declspec(dllexport) BOOL WINAPI WTSVirtualChannelClose(HANDLE h)
{
	channel *c = get(h);
	if (c == NULL) {
		SetLastError(ERROR_INVALID_HANDLE);
		return FALSE;
	}
	CloseHandle(c->pipe);
	c->magic = 0;
	LocalFree(c);
	return TRUE;
}

/* Waits up to timeout ms for a message, then reads it whole. A timeout
 * returns TRUE with *read = 0. */
__declspec(dllexport) BOOL WINAPI WTSVirtualChannelRead(HANDLE h, ULONG timeout, PCHAR buf, ULONG size, PULONG read)
{
	channel *c = get(h);
	DWORD avail, start = GetTickCount(), n;
	if (c == NULL || read == NULL) {
		SetLastError(ERROR_INVALID_HANDLE);
		return FALSE;
	}
	*read = 0;
	for (;;) {
		if (!PeekNamedPipe(c->pipe, NULL, 0, NULL, &avail, NULL))
			return FALSE;
		if (avail > 0)
			break;
		if (timeout != INFINITE && GetTickCount() - start >= timeout)
			return TRUE;
		Sleep(1);
	}
	if (!io(c->pipe, TRUE, buf, size, &n))
		return FALSE; /* ERROR_MORE_DATA if buf is too small, as for the real one */
	*read = n;
	return TRUE;
}

__declspec(dllexport) BOOL WINAPI WTSVirtualChannelWrite(HANDLE h, PCHAR buf, ULONG len, PULONG written)
{
	channel *c = get(h);
	DWORD n;
	if (c == NULL || written == NULL) {
		SetLastError(ERROR_INVALID_HANDLE);
		return FALSE;
	}
	*written = 0;
	if (!io(c->pipe, FALSE, buf, len, &n))
		return FALSE;
	*written = n;
	return TRUE;
}

__declspec(dllexport) BOOL WINAPI WTSVirtualChannelQuery(HANDLE h, int cls, PVOID *out, DWORD *len)
{
	channel *c = get(h);
	HANDLE *p;
	if (c == NULL) {
		SetLastError(ERROR_INVALID_HANDLE);
		return FALSE;
	}
	if (cls != WTS_VIRTUAL_FILE_HANDLE || out == NULL || len == NULL) {
		SetLastError(ERROR_INVALID_PARAMETER);
		return FALSE;
	}
	p = (HANDLE *)LocalAlloc(LPTR, sizeof *p);
	if (p == NULL)
		return FALSE;
	*p = c->pipe;
	*out = p;
	*len = sizeof *p;
	return TRUE;
}

__declspec(dllexport) void WINAPI WTSFreeMemory(PVOID p)
{
	LocalFree(p);
}
