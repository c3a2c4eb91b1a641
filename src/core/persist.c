/* persist.c: saving and loading views (being written). */
