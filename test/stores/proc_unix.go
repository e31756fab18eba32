package stores

import "syscall"

func processGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// killGroup ends the server's process group (SIGTERM; Azurite's node process is in it).
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGTERM) }
