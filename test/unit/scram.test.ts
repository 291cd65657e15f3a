import { describe, expect, it } from 'vitest'
import { ScramExchange, ScramSyntaxError, scramCredentials } from '../../src/db/embedded/scram.js'

/** The SCRAM-SHA-256 exchange published in RFC 7677, section 3 (user "user", password "pencil"). */
const RFC7677 = {
  salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
}

function exchange(password: string): ScramExchange {
  return new ScramExchange(scramCredentials(password, { salt: RFC7677.salt, iterations: 4096 }), RFC7677.serverNonce)
}

describe('the embedded server\'s SCRAM-SHA-256', () => {
  it('answers the RFC 7677 exchange byte for byte', () => {
    const scram = exchange('pencil')
    expect(scram.first(RFC7677.clientFirst)).toBe(RFC7677.serverFirst)
    expect(scram.final(RFC7677.clientFinal)).toBe(RFC7677.serverFinal)
  })

  it('refuses the same proof for another password', () => {
    const scram = exchange('pencil2')
    scram.first(RFC7677.clientFirst)
    expect(scram.final(RFC7677.clientFinal)).toBeUndefined()
  })

  it('refuses a proof of the wrong length, a replayed nonce, channel binding and an authorization identity', () => {
    const short = exchange('pencil')
    short.first(RFC7677.clientFirst)
    expect(short.final(RFC7677.clientFinal.replace(/p=.*$/, 'p=AAAA'))).toBeUndefined()
    const otherNonce = exchange('pencil')
    otherNonce.first('n,,n=user,r=anotherNonce')
    expect(() => otherNonce.final(RFC7677.clientFinal)).toThrow(ScramSyntaxError)
    expect(() => exchange('pencil').first('p=tls-server-end-point,,n=user,r=abc')).toThrow(/channel binding is not supported/)
    expect(() => exchange('pencil').first('n,a=admin,n=user,r=abc')).toThrow(/authorization identity/)
    expect(() => exchange('pencil').final(RFC7677.clientFinal)).toThrow(/before client-first/)
    const wrongBinding = exchange('pencil')
    wrongBinding.first(RFC7677.clientFirst)
    expect(() => wrongBinding.final(RFC7677.clientFinal.replace('c=biws', 'c=eSws'))).toThrow(/channel binding does not match/)
  })
})
