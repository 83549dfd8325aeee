package testrig

import (
	"fmt"
	"os/user"
	"strconv"
)

type sysUser struct{ uid, gid uint32 }

// lookupUser returns the uid and gid of a system user.
func lookupUser(name string) (sysUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return sysUser{}, fmt.Errorf("look up user %s: %w", name, errNoUser)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return sysUser{}, fmt.Errorf("parse uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return sysUser{}, fmt.Errorf("parse gid of %s: %w", name, err)
	}
	return sysUser{uid: uint32(uid), gid: uint32(gid)}, nil
}
