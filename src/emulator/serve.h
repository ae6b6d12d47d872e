/* `dvlua --serve`: the emulator in the foreground until SIGINT/SIGTERM. */
#ifndef DV_SERVE_H
#define DV_SERVE_H

/* argv[0] is the program name, argv[1] "--serve"; returns the process exit status. */
int dv_serve_main(int argc, char **argv);

#endif
