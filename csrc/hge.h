/* hge.h - the whole hge-embedded lock-in core. */
#ifndef HGE_H
#define HGE_H
#include "hge_types.h"
#include "hge_nco.h"
#include "hge_lockin.h"
#include "hge_update.h"
#endif
