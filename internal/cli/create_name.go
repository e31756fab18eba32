package cli

import (
	"context"
	"fmt"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// validateName checks NAME or --generate-name PREFIX: one of them, and valid.
func (o *CreateOptions) validateName() error {
	switch {
	case o.Name != "" && o.GenerateName != "":
		return fmt.Errorf("give a backup NAME or --generate-name %s, not both", o.GenerateName)
	case o.GenerateName != "":
		return catalog.ValidatePrefix(o.GenerateName)
	case o.Name == "":
		return fmt.Errorf("name the backup: create NAME, or create --generate-name PREFIX for PREFIX-YYYYMMDD-HHMMSS")
	}
	return catalog.ValidateName(o.Name)
}

// claim takes the backup's name in the location: NAME, or the first free name of --generate-name.
func (o *CreateOptions) claim(ctx context.Context, cat *catalog.Catalog, cl *catalog.Claim) error {
	if o.GenerateName == "" {
		return cat.Claim(ctx, o.Name, cl)
	}
	name, err := cat.ClaimGenerated(ctx, o.GenerateName, cl)
	if err != nil {
		return err
	}
	o.setName(name)
	return nil
}

// setName names the backup everywhere Complete put the name.
func (o *CreateOptions) setName(name string) {
	o.Name, o.cfg.Name = name, name
	if o.volCfg != nil {
		o.volCfg.Backup = name
	}
}
