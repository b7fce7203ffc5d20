"""Tenants (brands), their products and the credentials that act for them."""
