/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Go >= 1.22 gets its random numbers from bcryptprimitives.dll!ProcessPrng
 * at start-up and aborts without it. Wine 8.0 ships no such DLL, so the
 * Windows test binaries die before main. This DLL, put in the prefix's
 * system32, provides that one export on top of Wine's BCryptGenRandom.
 * Test setup only: real Windows (8.1 and later) has the real DLL.
 */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
