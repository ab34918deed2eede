package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kithnet/kith/node/client"
	"github.com/kithnet/kith/node/daemon"
)

// Environment variables that answer the passphrase prompts (for scripts,
// services and tests): the key's current passphrase, its new one, and a
// backup's.
const (
	envNewPassphrase    = "KITH_NEW_PASSPHRASE"
	envBackupPassphrase = "KITH_BACKUP_PASSPHRASE"
)

// secret reads a passphrase: from the environment variable env if it is
// set, else from the terminal without echo (twice when confirm), else it
// fails saying which variable to set.
func secret(env, prompt string, confirm bool) ([]byte, error) {
	if v, ok := os.LookupEnv(env); ok {
		return []byte(v), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%s: no terminal to ask on; set %s", prompt, env)
	}
	fmt.Fprintf(os.Stderr, "%s: ", prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Again, to be sure: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the two passphrases differ; nothing was changed")
		}
	}
	return p, nil
}

// keyPassphrase is the passphrase of dir's key, asked for only when the
// key is encrypted.
func keyPassphrase(dir string) ([]byte, error) {
	if !daemon.KeyEncrypted(dir) {
		return nil, nil
	}
	return secret(daemon.PassphraseEnv, "Passphrase of your key", false)
}

func keyCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "key", Short: "Protect your key, back it up, move to a new machine"}

	var remove bool
	pass := &cobra.Command{
		Use:   "passphrase [--remove]",
		Short: "Set or change the passphrase that encrypts your key (--remove: store it unencrypted)",
		Long: `Set or change the passphrase that encrypts your key file (Argon2id and
XChaCha20-Poly1305). It asks on the terminal, or reads KITH_PASSPHRASE (the
current one) and KITH_NEW_PASSPHRASE (the new one). A running kith up keeps
the key it read; the next start needs the new passphrase.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, err := keyPassphrase(g.data)
			if err != nil {
				return err
			}
			var next []byte
			if !remove {
				if next, err = secret(envNewPassphrase, "New passphrase", true); err != nil {
					return err
				}
				if len(next) == 0 {
					return errors.New("an empty passphrase: say --remove to store the key unencrypted")
				}
			}
			if err := daemon.ChangePassphrase(g.data, old, next); err != nil {
				return err
			}
			if remove {
				fmt.Fprintln(cmd.OutOrStdout(), "Your key is stored unencrypted now (readable by you only).")
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "Your key is encrypted with the new passphrase. kith up asks for it (or reads KITH_PASSPHRASE).")
			}
			return nil
		},
	}
	pass.Flags().BoolVar(&remove, "remove", false, "store the key unencrypted")

	export := &cobra.Command{
		Use:   "export FILE",
		Short: "Write an encrypted backup of your identity, friends and everything else to FILE",
		Long: `Write a backup of your node to FILE: the key, friends, groups, requests, shares,
invites and settings, sealed under a passphrase you choose (asked on the terminal,
or KITH_BACKUP_PASSPHRASE). kith init --restore FILE makes a node of it on
another machine. Move, do not copy: one identity should run on one machine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bp, err := secret(envBackupPassphrase, "Passphrase for the backup", true)
			if err != nil {
				return err
			}
			if len(bp) == 0 {
				return errors.New("a backup holds your secret key: give it a passphrase")
			}
			cx, cancel := ctx()
			defer cancel()
			if err := exportBackup(cx, g, args[0], bp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Backup written to %s. Restore it with: kith init --restore %s\n", args[0], args[0])
			return nil
		},
	}
	c.AddCommand(pass, export)
	return c
}

// exportBackup writes the backup to path: made by the running daemon (it holds
// the datastore open), or, without one, from the data directory.
func exportBackup(cx context.Context, g *globals, path string, bp []byte) error {
	if cl, err := clientOf(g); err == nil {
		data, err := cl.Backup(cx, string(bp))
		if err == nil {
			return daemon.WriteBackup(path, data)
		}
		if !errors.Is(err, client.ErrDaemonNotRunning) {
			return err
		}
	}
	kp, err := keyPassphrase(g.data)
	if err != nil {
		return err
	}
	return daemon.Backup(cx, g.data, path, kp, bp)
}

// restore makes the data directory from a backup (kith init --restore).
func restore(cmd *cobra.Command, g *globals, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	bp, err := secret(envBackupPassphrase, "Passphrase of the backup", false)
	if err != nil {
		return err
	}
	// The key on this machine: encrypted under KITH_PASSPHRASE if set, or
	// what the user types (empty: unencrypted).
	kp, err := secret(daemon.PassphraseEnv, "A passphrase for your key on this machine (empty: none)", true)
	if err != nil {
		kp = nil // no terminal and no KITH_PASSPHRASE: unencrypted, as kith init does
	}
	id, err := daemon.Restore(context.Background(), g.data, data, bp, kp)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Restored %s in %s, with everything the backup held.\nStart your node with: kith up --data %s\n", id, g.data, g.data)
	return nil
}
