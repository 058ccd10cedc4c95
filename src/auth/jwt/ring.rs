//! A `jsonwebtoken` [`CryptoProvider`] on `ring`, the crypto rustls uses,
//! so the crate carries one crypto stack (jsonwebtoken itself ships only
//! aws-lc-rs and RustCrypto backends). Ported from jsonwebtoken's aws-lc-rs
//! provider, whose API ring shares. JWK helpers are not provided: the hub
//! verifies tokens with configured keys and never reads JWKs.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature as sig;

/// The provider: signers (for tests and hosts that mint tokens) and
/// verifiers for HS*, RS*, PS*, ES256/384 and EdDSA.
pub(crate) static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Installs [`RING_PROVIDER`] as jsonwebtoken's process default unless the
/// host installed one of its own first (then that one is used).
pub(crate) fn install() {
    let _ = RING_PROVIDER.install_default();
}

fn bad_key() -> Error {
    ErrorKind::InvalidKeyFormat.into()
}

fn failed<E>(_: E) -> signature::Error {
    signature::Error::new()
}

enum Key {
    Hmac(hmac::Key),
    Ecdsa(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
    Rsa(sig::RsaKeyPair, &'static dyn sig::RsaEncoding),
}

struct RingSigner {
    alg: Algorithm,
    key: Key,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.key {
            Key::Hmac(k) => Ok(hmac::sign(k, msg).as_ref().to_vec()),
            Key::Ecdsa(k) => Ok(k.sign(&rng, msg).map_err(failed)?.as_ref().to_vec()),
            Key::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Key::Rsa(k, enc) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(*enc, &rng, msg, &mut out).map_err(failed)?;
                Ok(out)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let bytes = key.as_bytes();
    let want = |family| {
        if key.family() == family {
            Ok(())
        } else {
            Err(bad_key())
        }
    };
    let rng = SystemRandom::new();
    let ecdsa = |a| sig::EcdsaKeyPair::from_pkcs8(a, bytes, &rng).map_err(|_| bad_key());
    let rsa = || sig::RsaKeyPair::from_der(bytes).map_err(|_| bad_key());
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            want(AlgorithmFamily::Hmac)?;
            Key::Hmac(hmac::Key::new(hmac_alg(*alg), bytes))
        }
        Algorithm::ES256 => {
            want(AlgorithmFamily::Ec)?;
            Key::Ecdsa(ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)?)
        }
        Algorithm::ES384 => {
            want(AlgorithmFamily::Ec)?;
            Key::Ecdsa(ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING)?)
        }
        Algorithm::EdDSA => {
            want(AlgorithmFamily::Ed)?;
            Key::Ed(sig::Ed25519KeyPair::from_pkcs8(bytes).map_err(|_| bad_key())?)
        }
        Algorithm::RS256 => Key::Rsa(rsa()?, &sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Key::Rsa(rsa()?, &sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Key::Rsa(rsa()?, &sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Key::Rsa(rsa()?, &sig::RSA_PSS_SHA256),
        Algorithm::PS384 => Key::Rsa(rsa()?, &sig::RSA_PSS_SHA384),
        Algorithm::PS512 => Key::Rsa(rsa()?, &sig::RSA_PSS_SHA512),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingSigner { alg: *alg, key }))
}

fn hmac_alg(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

enum Check {
    Hmac(hmac::Key),
    /// A DER public key (SubjectPublicKeyInfo contents, as jsonwebtoken
    /// keeps them) checked with a ring algorithm.
    Public(&'static dyn sig::VerificationAlgorithm, DecodingKey),
    /// RSA given as modulus and exponent.
    RsaParts(&'static sig::RsaParameters, DecodingKey),
}

struct RingVerifier {
    alg: Algorithm,
    check: Check,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        match &self.check {
            Check::Hmac(k) => hmac::verify(k, msg, signature).map_err(failed),
            Check::Public(alg, key) => {
                let der = key.try_get_as_bytes().map_err(failed)?;
                sig::UnparsedPublicKey::new(*alg, der)
                    .verify(msg, signature)
                    .map_err(failed)
            }
            Check::RsaParts(params, key) => match key.kind() {
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }
                        .verify(params, msg, signature)
                        .map_err(failed)
                }
                DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(*params, der)
                    .verify(msg, signature)
                    .map_err(failed),
            },
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let want = |family| {
        if key.family() == family {
            Ok(())
        } else {
            Err(bad_key())
        }
    };
    let rsa = |params| -> Result<Check> {
        want(AlgorithmFamily::Rsa)?;
        Ok(Check::RsaParts(params, key.clone()))
    };
    let check = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            want(AlgorithmFamily::Hmac)?;
            Check::Hmac(hmac::Key::new(hmac_alg(*alg), key.try_get_as_bytes()?))
        }
        Algorithm::ES256 => {
            want(AlgorithmFamily::Ec)?;
            Check::Public(&sig::ECDSA_P256_SHA256_FIXED, key.clone())
        }
        Algorithm::ES384 => {
            want(AlgorithmFamily::Ec)?;
            Check::Public(&sig::ECDSA_P384_SHA384_FIXED, key.clone())
        }
        Algorithm::EdDSA => {
            want(AlgorithmFamily::Ed)?;
            Check::Public(&sig::ED25519, key.clone())
        }
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256)?,
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384)?,
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512)?,
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256)?,
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384)?,
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512)?,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(RingVerifier { alg: *alg, check }))
}
