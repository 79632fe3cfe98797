// Package ftpd serves OS payloads over FTP and FTPS and runs an anonymous,
// write-only drop box for device logs, on top of
// github.com/fclairamb/ftpserverlib (wrapped, not forked).
//
// # Security model
//
// What a client can reach: the FTP root (through an os.Root, so "..",
// absolute names and symlinks that leave the root fail in the kernel-backed
// lookup), the published images store read-only under /images/, and
// rendered files (installer answer files) read-only. Replies never carry a
// real path.
//
// Anonymous users ("anonymous", "ftp") read the public tree (world-readable
// files only) and may only upload, as new files, directly into the incoming
// directory: there they can neither list, stat, read back, append, resume,
// overwrite, rename nor delete. Uploads are written to a hidden temporary
// name, capped (max_upload → 552, incoming_quota → 552), created 0600 and
// linked into place only when the transfer ended cleanly; anything else
// (ABOR, reset, error, cap) removes the data.
//
// Named users are virtual accounts with bcrypt hashes, confined to their
// home, with read/write/delete/mkdir/rename permissions; uploads are
// create-only for them too and nobody writes under /images/. root and
// deny_users are refused at USER; a named user on a plaintext control
// connection is refused at USER (before any password is sent) unless
// allow_plaintext_login is set and require_tls is not.
//
// Data connections: PORT/EPRT must name the control connection's peer and a
// port >= 1024 (checked by bootyard's control-connection filter before the
// library sees the command, also under TLS); passive connections are
// multiplexed per client address, so one from another address neither
// reaches nor derails the client's transfer. Active connections come from an
// unprivileged source port, so active mode works after the privilege drop.
//
// What it relies on: the kernel for path confinement (os.Root; bind mounts
// and hard links inside the root are not prevented, see internal/fsroot),
// Go's crypto/tls, and ftpserverlib for the protocol. See docs/ftp.md.
package ftpd
