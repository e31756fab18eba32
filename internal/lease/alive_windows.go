//go:build windows

package lease

// alive reports whether process pid is running; on Windows this is not checked, and a lease of
// a killed run is taken over only once it expired.
func alive(int) bool { return true }
