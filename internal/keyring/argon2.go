package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"filippo.io/age"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The location key file is an age file whose one stanza wraps age's file key with a key derived
// from the password by Argon2id, the way age's own scrypt stanza does with scrypt (same AEAD,
// same salt handling, same "only recipient" rule).
//
// Why Argon2id at RFC 9106's second recommended setting (3 passes over 64 MiB, 4 lanes) instead
// of the scrypt 2^18 (256 MiB) used before: a guess costs an attacker about the same memory
// traffic (~0.5 GiB: 3 passes reading two blocks and writing one, against scrypt's one write and
// one read of 256 MiB), Argon2id punishes trading memory for computation far more than scrypt
// (what GPUs do to scrypt), and it runs its lanes on all cores. A command waits ~0.3 s for it on
// a 2-core machine instead of ~1.2 s (measured: scrypt mixes run one after another, and 256 MiB
// of fresh memory is 65,000 page faults). What it gives up: an attacker bounded by memory
// capacity rather than bandwidth runs 4 guesses where scrypt allowed 1.
const (
	argon2Type  = "pvbackup-argon2id"
	argon2Label = "kubectl-pvbackup/argon2id"
	saltSize    = 16
	fileKeySize = 16 // age's file key
)

// Cost is the Argon2id cost of a wrapping: passes over memory, memory in KiB, lanes.
type Cost struct {
	Time    uint32
	Memory  uint32
	Threads uint8
}

// DefaultCost is what new key files are wrapped with (RFC 9106 section 4, second option).
var DefaultCost = Cost{Time: 3, Memory: 64 << 10, Threads: 4}

// MaxCost caps what is accepted on read: a bucket writer could raise the cost in the header to
// make every command spend minutes and gigabytes before the header's MAC is checked. Passes times
// memory is capped too (maxPassKiB), at ten times the default's.
var MaxCost = Cost{Time: 16, Memory: 1 << 20, Threads: 16}

// maxPassKiB caps Time × Memory (KiB): 2 GiB of passes, a few seconds.
const maxPassKiB = 2 << 20

// cost is DefaultCost; tests lower it (see SetTestCost).
var cost = DefaultCost

// SetTestCost makes keys wrapped from now on cheap to unwrap. For tests only: a key file made
// so is as readable as any, but its password is easier to guess.
func SetTestCost() { cost = Cost{Time: 1, Memory: 64, Threads: 1} }

func (c Cost) String() string {
	return fmt.Sprintf("Argon2id t=%d m=%d MiB p=%d", c.Time, c.Memory>>10, c.Threads)
}

func (c Cost) key(password, salt []byte) []byte {
	return argon2.IDKey(password, append([]byte(argon2Label), salt...), c.Time, c.Memory, c.Threads, chacha20poly1305.KeySize)
}

// argon2Recipient wraps a file key under a password.
type argon2Recipient struct {
	password []byte
	cost     Cost
}

func (r *argon2Recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.New(r.cost.key(r.password, salt))
	if err != nil {
		return nil, err
	}
	c := r.cost
	return []*age.Stanza{{
		Type: argon2Type,
		Args: []string{b64.EncodeToString(salt), strconv.Itoa(int(c.Time)), strconv.Itoa(int(c.Memory)), strconv.Itoa(int(c.Threads))},
		// The key is used once: a zero nonce, as age does.
		Body: aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey, nil),
	}}, nil
}

// WrapWithLabels gives a random label, so age refuses to mix this recipient with any other:
// a file that opens with the password then was made by someone who knew it.
func (r *argon2Recipient) WrapWithLabels(fileKey []byte) ([]*age.Stanza, []string, error) {
	s, err := r.Wrap(fileKey)
	if err != nil {
		return nil, nil, err
	}
	label := make([]byte, 16)
	if _, err := rand.Read(label); err != nil {
		return nil, nil, err
	}
	return s, []string{hex.EncodeToString(label)}, nil
}

// argon2Identity unwraps a file key with a password.
type argon2Identity struct {
	password []byte
	types    []string // of the stanzas seen: a wrapping this build does not know is not a wrong password
	seen     Cost     // the cost of the argon2id stanza, once parsed
}

func (i *argon2Identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		i.types = append(i.types, s.Type)
	}
	for _, s := range stanzas {
		if s.Type != argon2Type {
			continue
		}
		if len(stanzas) != 1 {
			return nil, errors.New("an argon2id recipient must be the only one")
		}
		return i.unwrap(s)
	}
	return nil, fmt.Errorf("%w: not wrapped with argon2id", age.ErrIncorrectIdentity)
}

func (i *argon2Identity) unwrap(s *age.Stanza) ([]byte, error) {
	if len(s.Args) != 4 {
		return nil, errors.New("invalid argon2id stanza")
	}
	salt, err := b64.DecodeString(s.Args[0])
	if err != nil || len(salt) != saltSize {
		return nil, errors.New("invalid argon2id salt")
	}
	c, err := parseCost(s.Args[1:])
	if err != nil {
		return nil, err
	}
	i.seen = c
	aead, err := chacha20poly1305.New(c.key(i.password, salt))
	if err != nil {
		return nil, err
	}
	if len(s.Body) != fileKeySize+chacha20poly1305.Overhead {
		return nil, errors.New("invalid argon2id stanza: wrong file key size")
	}
	fileKey, err := aead.Open(nil, make([]byte, chacha20poly1305.NonceSize), s.Body, nil)
	if err != nil {
		// Wrapped so that age reports "no identity matched": a wrong password.
		return nil, fmt.Errorf("%w: incorrect password", age.ErrIncorrectIdentity)
	}
	return fileKey, nil
}

// unknown is the stanza type seen when it is neither ours nor age's scrypt ("" otherwise).
func (i *argon2Identity) unknown() string {
	for _, t := range i.types {
		if t != argon2Type && t != "scrypt" {
			return t
		}
	}
	return ""
}

// parseCost reads "time memory threads" from a stanza and refuses what is above MaxCost (or
// not a canonical positive number: the header is authenticated only after the derivation).
func parseCost(args []string) (Cost, error) {
	var v [3]uint64
	for n, a := range args {
		x, err := strconv.ParseUint(a, 10, 32)
		if err != nil || x == 0 || strconv.FormatUint(x, 10) != a {
			return Cost{}, fmt.Errorf("invalid argon2id cost %q", a)
		}
		v[n] = x
	}
	c := Cost{Time: uint32(v[0]), Memory: uint32(v[1])}
	if v[0] > uint64(MaxCost.Time) || v[1] > uint64(MaxCost.Memory) || v[2] > uint64(MaxCost.Threads) || v[0]*v[1] > maxPassKiB {
		return Cost{}, fmt.Errorf("argon2id cost t=%d m=%d KiB p=%d above what kubectl-pvbackup writes (at most %s): the key file was not written by this tool or was tampered with", v[0], v[1], v[2], MaxCost)
	}
	c.Threads = uint8(v[2])
	if c.Memory < 8*uint32(c.Threads) {
		return Cost{}, fmt.Errorf("invalid argon2id cost: %d KiB for %d lanes", c.Memory, c.Threads)
	}
	return c, nil
}

// b64 is age's encoding of stanza arguments and bodies.
var b64 = base64.RawStdEncoding

// unusualCost is the stanza's cost when it is not the one this plugin writes ("" otherwise): a
// bucket writer may raise it, within MaxCost, so that every command spends seconds and a
// gigabyte before it fails; that is worth telling from a wrong password.
func (i *argon2Identity) unusualCost() string {
	if i.seen == (Cost{}) || i.seen == cost {
		return ""
	}
	return i.seen.String()
}
