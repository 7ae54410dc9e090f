/* Passing descriptors over a Unix socket (SCM_RIGHTS), with one tag byte:
** the host hands a worker its ring (memfd and eventfd) at launch, and a
** warm worker its plugin image later. One implementation for both sides. */
#ifndef PLEXUS_FDPASS_H
#define PLEXUS_FDPASS_H

/* The most descriptors one message carries. */
#define PLEXUS_FDPASS_MAX 4

/* Sends tag with fds[0..n) (n <= PLEXUS_FDPASS_MAX). 0, or an errno. */
int plexus_fds_send(int sock, char tag, const int *fds, int n);

/* Receives one message that must carry exactly n descriptors (close-on-exec)
** into fds, and its tag byte into *out_tag. 0; -1 at end of file; else an
** errno (EPROTO when the message held other than n descriptors). */
int plexus_fds_receive(int sock, char *out_tag, int *fds, int n);

#endif
