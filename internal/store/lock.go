package store

import "gocloud.dev/blob"

// lockOptions returns the options of a write into the location, with the location's object lock
// added when it has one.
func (l *Location) lockOptions(opts *blob.WriterOptions) *blob.WriterOptions {
	return opts
}
