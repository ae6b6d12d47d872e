#include "serve.h"

#include <stdio.h>

int dv_serve_main(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "%s: --serve: the emulator is not built yet\n", argv[0]);
    return 1;
}
