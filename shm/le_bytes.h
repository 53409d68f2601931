/*
 * le_bytes.h - little-endian loads and stores at any alignment.
 *
 * Wire frames and encoded metadata are little-endian and byte-packed, so
 * their fields are often misaligned.  memcpy into a local is the portable,
 * UB-free way to read them; compilers turn it into a single (unaligned-safe)
 * load on x86 and arm64.  Never cast a byte pointer to a wider type instead.
 */
#ifndef HBUS_LE_BYTES_H
#define HBUS_LE_BYTES_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HBUS_LE16(x) __builtin_bswap16(x)
#define HBUS_LE32(x) __builtin_bswap32(x)
#define HBUS_LE64(x) __builtin_bswap64(x)
#else
#define HBUS_LE16(x) (x)
#define HBUS_LE32(x) (x)
#define HBUS_LE64(x) (x)
#endif

static inline uint16_t hbus_ld_le16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return HBUS_LE16(v);
}

static inline uint32_t hbus_ld_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return HBUS_LE32(v);
}

static inline uint64_t hbus_ld_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return HBUS_LE64(v);
}

static inline void hbus_st_le16(uint8_t *p, uint16_t v)
{
	v = HBUS_LE16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hbus_st_le32(uint8_t *p, uint32_t v)
{
	v = HBUS_LE32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void hbus_st_le64(uint8_t *p, uint64_t v)
{
	v = HBUS_LE64(v);
	memcpy(p, &v, sizeof(v));
}

#endif /* HBUS_LE_BYTES_H */
