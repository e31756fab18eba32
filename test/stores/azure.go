package stores

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// StartAzurite starts Azurite's Blob service (bin is hack/tools.sh's azurite-blob) on a free port
// of addr, in memory, with an account of its own (not the emulator's well-known one), and
// creates a container. The returned function stops it.
func StartAzurite(bin, dir, addr string) (*Server, func(), error) {
	port, err := freePort(addr)
	if err != nil {
		return nil, nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s := &Server{Scheme: "azblob", Endpoint: "http://" + net.JoinHostPort(addr, strconv.Itoa(port)), Bucket: "pvbackup",
		Account: "pvbackup", Key: base64.StdEncoding.EncodeToString(key)}
	cmd := exec.Command(bin, "--blobHost", addr, "--blobPort", strconv.Itoa(port), "--inMemoryPersistence", "--silent",
		"--disableTelemetry",    // nothing leaves this machine
		"--skipApiVersionCheck", // the Go SDK may speak a newer service version than this Azurite
	)
	cmd.Dir = dir // anything it writes stays in the run's directory
	cmd.Env = append(os.Environ(), "AZURITE_ACCOUNTS="+s.Account+":"+s.Key)
	p, err := start(dir, "azurite", cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := p.waitReady("Azurite", func() error { return createContainer(s) }); err != nil {
		return nil, nil, err
	}
	return s, p.stop, nil
}

// createContainer creates s.Bucket; one that exists already is fine (a retried start).
func createContainer(s *Server) error {
	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		return err
	}
	c, err := azblob.NewClientWithSharedKeyCredential(fmt.Sprintf("%s/%s/", s.Endpoint, s.Account), cred, nil)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout()
	defer cancel()
	_, err = c.CreateContainer(ctx, s.Bucket, nil)
	if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return err
}
