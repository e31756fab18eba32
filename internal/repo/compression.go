package repo

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/snapshot/policy"
)

// Compression settings besides Kopia's compressor names.
const (
	// CompressionNone stores every file as it is.
	CompressionNone = "none"
	// CompressionAuto compresses with AutoCompressor what may compress: files of AutoMinSize or
	// more whose extension is not one of a format that is compressed already (NeverCompress).
	// Kopia itself stores a content uncompressed when compressing did not make it smaller, but
	// only after compressing it; auto tests a sample of each stream first (SampleCompression)
	// and does not compress what the sample shows will not compress.
	CompressionAuto = "auto"
)

// DefaultCompression is what a backup uses unless told otherwise; AutoCompressor is auto's
// compressor. Chosen by measurement (go run ./hack/bench-format; make bench-mover): s2-default
// compresses JSON logs and text to about a third, at a throughput close to storing them as they
// are, and gives up on random data fastest; zstd-fastest stores less (about a fifth) but costs
// several times more CPU per byte, which on a mover's one or two cores is the backup window.
const (
	DefaultCompression = CompressionAuto
	AutoCompressor     = "s2-default"
	AutoMinSize        = 4 << 10
)

// NeverCompress are the extensions (sorted, as Kopia's policy needs them) of formats that are
// compressed already: media, archives, compressed office documents and packages, in lower and
// upper case (Kopia compares them as they are; cameras write .JPG).
var NeverCompress = withUpper([]string{
	".7z", ".apk", ".avif", ".br", ".bz2", ".deb", ".docx", ".flac", ".gif", ".gz", ".heic",
	".jar", ".jpeg", ".jpg", ".lz4", ".lzma", ".m4a", ".m4v", ".mkv", ".mov", ".mp3", ".mp4",
	".odp", ".ods", ".odt", ".ogg", ".opus", ".png", ".pptx", ".rar", ".rpm", ".tgz", ".war",
	".webm", ".webp", ".whl", ".xlsx", ".xz", ".zip", ".zst",
})

func withUpper(s []string) []string {
	out := append([]string(nil), s...)
	for _, e := range s {
		out = append(out, strings.ToUpper(e))
	}
	sort.Strings(out)
	return out
}

// CompressionPolicy is Kopia's compression policy for a compression setting: "" (the default),
// none, auto, or a Kopia compressor name (every file, whatever its size or extension).
func CompressionPolicy(name string) (policy.CompressionPolicy, error) {
	if name == "" {
		name = DefaultCompression
	}
	switch name {
	case CompressionNone:
		return policy.CompressionPolicy{CompressorName: CompressionNone}, nil
	case CompressionAuto:
		return policy.CompressionPolicy{
			CompressorName: AutoCompressor,
			MinSize:        AutoMinSize,
			NeverCompress:  NeverCompress,
		}, nil
	}
	if err := ValidateCompression(name); err != nil {
		return policy.CompressionPolicy{}, err
	}
	return policy.CompressionPolicy{CompressorName: compression.Name(name)}, nil
}

// IsAuto reports whether the compression setting name ("" = DefaultCompression) is auto, whose
// writes go through SampleCompression.
func IsAuto(name string) bool {
	if name == "" {
		name = DefaultCompression
	}
	return name == CompressionAuto
}

// ValidateCompression reports whether name is a compression setting: "", none, auto, or a
// compressor Kopia knows (deprecated ones are refused: new data must stay readable by it).
func ValidateCompression(name string) error {
	if name == "" || name == CompressionNone || name == CompressionAuto {
		return nil
	}
	n := compression.Name(name)
	if compression.ByName[n] == nil || compression.IsDeprecated[n] {
		return fmt.Errorf("unknown compression %q (use %s)", name, strings.Join(CompressionNames(), ", "))
	}
	return nil
}

// CompressionNames are the valid settings: none, auto and Kopia's current compressors.
func CompressionNames() []string {
	var names []string
	for n, c := range compression.ByName {
		if c != nil && !compression.IsDeprecated[n] {
			names = append(names, string(n))
		}
	}
	sort.Strings(names)
	return append([]string{CompressionNone, CompressionAuto}, names...)
}
