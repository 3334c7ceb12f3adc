package com

import "errors"

// RegisterDLL writes r's one value under the scope's hive (see
// DLLRegistration), replacing a {CLSID} registration under the same Name.
// Writing it again is harmless.
func RegisterDLL(r DLLRegistration, s Scope) error {
	if err := r.Validate(); err != nil {
		return err
	}
	root, hive := s.root()
	return setString(root, hive, r.AddInKey(), "Name", r.DLL)
}

// UnregisterAddIn removes the AddIns entry name from both hives, whichever
// form it has: the Name value, and the key if nothing else is left in it
// (configuration values a user added keep it). COM class keys are not
// touched: that is Unregister's part. Idempotent; an HKLM entry that
// cannot be removed for lack of rights is an error wrapping ErrNeedAdmin.
func UnregisterAddIn(name string) error {
	if err := (DLLRegistration{Name: name, DLL: `C:\x.dll`}).Validate(); err != nil {
		return err
	}
	key := AddInsParent + `\` + name
	var errs []error
	for _, s := range []Scope{PerUser, Machine} {
		root, hive := s.root()
		errs = append(errs, deleteValue(root, hive, key, "Name"), deleteIfEmpty(root, hive, key))
	}
	return errors.Join(errs...)
}
