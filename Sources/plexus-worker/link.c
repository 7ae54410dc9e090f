/* The worker must not load the Swift runtime (start time, and address space
** under RLIMIT_AS), but swiftc links every executable with -lswiftCore.
** swift-autolink-extract copies the strings of this section from every
** object onto the link line ahead of -lswiftCore; --as-needed there drops
** each library nothing references. Package.swift's -nostartfiles leaves out
** swiftrt.o, the only reference to the runtime, so libc stays the only
** library the loader maps (WorkerBuildTests checks a running worker). */
__attribute__((used, section(".swift1_autolink_entries")))
static const char plexus_worker_link_flags[] = "-Wl,--as-needed";
