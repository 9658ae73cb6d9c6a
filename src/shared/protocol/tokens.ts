import { z } from 'zod';

/** Token administration (admin token only): `raysub token create|list|revoke`. */
export const tokenKindSchema = z.enum(['user', 'agent']);

export const tokenCreateRequestSchema = z.object({
  kind: tokenKindSchema,
  name: z.string().min(1).max(64).optional(),
});
export type TokenCreateRequest = z.infer<typeof tokenCreateRequestSchema>;

export const tokenInfoSchema = z.object({
  id: z.string(),
  kind: tokenKindSchema,
  name: z.string(),
  created_at: z.number(),
  revoked_at: z.number().nullable(),
});
export type TokenInfoJson = z.infer<typeof tokenInfoSchema>;

/** The token itself is in this answer only: the head keeps its digest. */
export const tokenCreateResponseSchema = tokenInfoSchema.extend({ token: z.string() });
export const tokenListSchema = z.object({ tokens: z.array(tokenInfoSchema) });
