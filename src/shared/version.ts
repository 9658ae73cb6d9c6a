export const RAYSUB_VERSION = '0.1.0';
/** The Ray version the head reports, so Ray's clients enable every feature of API v4. */
export const COMPATIBLE_RAY_VERSION = '2.58.0';
