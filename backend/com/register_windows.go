package com

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// Scope is where a registration goes.
type Scope int

const (
	// PerUser writes under HKEY_CURRENT_USER; no rights needed. COM
	// honours it for mstsc run by that user, not elevated.
	PerUser Scope = iota
	// Machine writes under HKEY_LOCAL_MACHINE, for every user; needs
	// administrator rights.
	Machine
)

func (s Scope) root() (registry.Key, string) {
	if s == Machine {
		return registry.LOCAL_MACHINE, "HKLM"
	}
	return registry.CURRENT_USER, "HKCU"
}

// Register writes r's two values under the scope's hive (see
// Registration). Writing the same registration again is harmless.
func Register(r Registration, s Scope) error {
	if err := r.Validate(true); err != nil {
		return err
	}
	root, hive := s.root()
	if err := setString(root, hive, r.LocalServerKey(), "", LocalServerCommand(r.Exe)); err != nil {
		return err
	}
	return setString(root, hive, r.AddInKey(), "Name", r.CLSID)
}

func setString(root registry.Key, hive, path, name, value string) error {
	k, _, err := registry.CreateKey(root, path, registry.SET_VALUE)
	if err != nil {
		return keyError("creating", hive, path, err)
	}
	defer k.Close()
	if err := k.SetStringValue(name, value); err != nil {
		return keyError("writing", hive, path, err)
	}
	return nil
}

// Unregister removes what Register wrote, from both hives: the
// LocalServer32 key, the CLSID key if nothing else is left in it, the
// AddIns key's Name value and the AddIns key if nothing else is left in
// it. Missing keys are not errors, so it is idempotent. An HKLM
// registration that cannot be removed for lack of rights is an error
// wrapping ErrNeedAdmin; the HKCU one is removed all the same.
func Unregister(r Registration) error {
	if err := r.Validate(false); err != nil {
		return err
	}
	var errs []error
	for _, s := range []Scope{PerUser, Machine} {
		root, hive := s.root()
		errs = append(errs,
			deleteKey(root, hive, r.LocalServerKey()),
			deleteIfEmpty(root, hive, r.ClassKey()),
			deleteValue(root, hive, r.AddInKey(), "Name"),
			deleteIfEmpty(root, hive, r.AddInKey()))
	}
	return errors.Join(errs...)
}

func deleteKey(root registry.Key, hive, path string) error {
	if err := registry.DeleteKey(root, path); err != nil && !notFound(err) {
		return keyError("removing", hive, path, err)
	}
	return nil
}

func deleteValue(root registry.Key, hive, path, name string) error {
	k, err := registry.OpenKey(root, path, registry.SET_VALUE)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return keyError("opening", hive, path, err)
	}
	defer k.Close()
	if err := k.DeleteValue(name); err != nil && !notFound(err) {
		return keyError("removing a value of", hive, path, err)
	}
	return nil
}

// deleteIfEmpty removes path if it has no subkeys and no values: a key
// someone else also uses is left alone.
func deleteIfEmpty(root registry.Key, hive, path string) error {
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE|registry.ENUMERATE_SUB_KEYS)
	if err != nil {
		if notFound(err) {
			return nil
		}
		return keyError("opening", hive, path, err)
	}
	info, err := k.Stat()
	k.Close()
	if err != nil {
		return keyError("inspecting", hive, path, err)
	}
	if info.SubKeyCount > 0 || info.ValueCount > 0 {
		return nil
	}
	return deleteKey(root, hive, path)
}

func notFound(err error) bool {
	return errors.Is(err, windows.ERROR_FILE_NOT_FOUND) || errors.Is(err, windows.ERROR_PATH_NOT_FOUND)
}

func keyError(op, hive, path string, err error) error {
	if hive == "HKLM" && errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return fmt.Errorf("com: %s %s\\%s: %w: %w", op, hive, path, ErrNeedAdmin, err)
	}
	return fmt.Errorf("com: %s %s\\%s: %w", op, hive, path, err)
}
